//! caas-dockerfile-gen: legacy app -> plan -> Dockerfile -> image. Filled in by issue #5.
