"""The engine-neutral core: schema, time cuts, ids, the hash chain, validation and projection
definitions. Nothing here touches storage or an engine; every other layer builds on it."""
