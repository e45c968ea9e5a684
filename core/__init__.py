"""The core, one subpackage per concern: contract (hooks, registry, Model, Task, spec), inputs, tasks,
artifacts, graph, backends, board. It never imports a plugin and names no model, family or dataset;
plugins import it through `modelzoo.plugin`."""
