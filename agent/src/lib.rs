//! caas-agent
