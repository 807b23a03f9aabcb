//! caas-zk: ZooKeeper recipes (persistent ephemeral node, fenced leader latch, children cache).
