"""Action kinds: one module or package per kind, each declaring its model, runner, timeout and secrets."""
