"""PostgreSQL schema (migrations/*.sql) and the queries the services run."""
