"""Route handlers, one module per resource; each is parse → call a service → serialise."""
