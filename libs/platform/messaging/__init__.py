"""The messaging backbone every service uses.

- `unit_of_work`: one Postgres transaction that changes state and records outgoing events (outbox)
  and the consumed event's id (inbox) together.
- `relay`: publishes the outbox in order with an idempotent producer (acks=all), keeping trace context.
- `consumer`: decodes, deduplicates and handles incoming events; commits offsets only after the
  handler's transaction; dead-letters bad messages; bounded retries for transient failures.
- `dead_letter`: the per-consumer-group dead-letter topic.
- `topics_admin`: creates topics explicitly from the contracts' registry.
- `kafka`: the broker/producer with safe defaults.
"""
