"""Http and Https actions: the request model, the guarded runner, outbound authentication."""
