"""SQL repositories for the envelope-lifecycle schema. Each function takes the connection of the caller's
unit of work, so reads and writes of one use case share its transaction."""
