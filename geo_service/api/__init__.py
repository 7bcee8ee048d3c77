"""HTTP API: dependencies, schemas, one router per resource."""
