//! caas-tests: the harness that starts real ZooKeeper servers, builds local images and creates network namespaces.
