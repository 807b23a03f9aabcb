//! caas-central: the stateless REST API and scheduler. Filled in by the central issue (#3).
