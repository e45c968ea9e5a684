"""Model plugins that ship with modelzoo; each registers through its own entry point."""
