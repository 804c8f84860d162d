-- Issue 14: the actor (`submitted_by`) is the token's subject; what a body said it was is kept apart,
-- labelled as a claim, and never used as the actor.
ALTER TABLE operating_envelope ADD COLUMN IF NOT EXISTS claimed_by text;
