"""The `zoo` subcommands, one module per area."""
