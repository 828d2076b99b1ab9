"""torch.distributed helpers: the collectives every rank calls alike (identities in a single process)."""
