"""The core: registry, hook specifications, config, input handling, cache, backends, runner, the board
toolchain steps, and building blocks that model plugins share (the video ResNet family's builder and
hooks). It never imports a plugin; plugins import it through `modelzoo.plugin`."""
