"""The operator console: a role the balancing service takes on (docs/console.md).

- `store`: the console's own tables (timeline, envelope transitions, circuit capacity with
  its previous value, what-if audit), kept from published events only.
- `handlers`: adds the console's event handling to balancing's consumer and wakes the live page.
- `picture`: the whole operator picture of one microgrid, from balancing's read models and the store.
- `what_if`: the cycle a proposed change would produce, by the same domain cycle, stored nowhere.
- `routes`: the API routes, the live event stream and the page.
"""
