"""The model-agnostic core: registry, hook specifications, config, input handling, backends, runner."""
