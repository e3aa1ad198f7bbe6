"""Pure building blocks shared by storage, aggregation and the API: no Flask, no I/O."""
