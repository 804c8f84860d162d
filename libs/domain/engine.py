"""The version of the balancing engine: which rules made a stored cycle.

Bumped whenever the same inputs may give a different cycle output (a changed rule, a fixed
defect), so a replay can tell "this engine decides differently now" from "replay is broken".

- ``1``: cycles stored before versions were recorded: levels floored to whole watts per saturated
  node (drifting with the number of saturated subtrees), no parent-type rules.
- ``2``: exact max-min shares rounded once by largest remainder down the tree; the parent-type
  rules of the tree (PARENT_TYPE_NOT_ALLOWED).
"""

from __future__ import annotations

ENGINE_VERSION = "2"
UNVERSIONED_ENGINE = "1"  # what a stored cycle without a recorded version was made by
