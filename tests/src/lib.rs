//! caas-tests: the harness every end-to-end test uses. It starts real ZooKeeper servers, builds
//! the local test images without a registry, creates network namespaces and runs agents in them,
//! and cleans all of that up on success, failure and panic.

pub mod agent;
pub mod binaries;
pub mod browser;
pub mod bulk_image;
pub mod cluster;
pub mod dockerd;
pub mod fixture;
pub mod images;
pub mod netns;
pub mod process;
pub mod registry;
pub mod sandbox_ns;
pub mod site_link;
pub mod sofa;
pub mod vlan_lab;
pub mod wait;
pub mod zk_io;
pub mod zk_server;
