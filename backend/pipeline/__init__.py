"""Pipeline files: model, loading with positions, validation and planning. Pure: no I/O but reading."""
