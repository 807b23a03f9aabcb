//! Bounding the node's disk: images pulled from the image center that no assignment or prewarm
//! of this node names are removed by the policy ops set (`image_prune`: keep the newest N, or
//! remove what stayed unused longer than an age). Images the agent did not pull (no name on a
//! center or proxy of the pool: the sandbox image, locally built ones) are never touched, nor is
//! an image any container uses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caas_api::ImageRef;
use tokio_util::sync::CancellationToken;

use super::Puller;
use crate::runtime::{ContainerRuntime, ImageInfo};

/// How unused images are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrunePolicy {
    Off,
    /// Keep the N newest (by build time) unused images; remove the rest.
    Keep(usize),
    /// Remove an image once this agent has seen it unused for this long.
    UnusedFor(Duration),
}

impl PrunePolicy {
    /// `off`, `keep:N` or `age:DURATION` (`90s`, `30m`, `24h`, `7d`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a prune policy; use \"keep:N\" (keep the N newest unused images), \
                 \"age:24h\" (remove what stayed unused that long; s, m, h or d) or \"off\""
            )
        };
        match text.trim().split_once(':') {
            None if text.trim() == "off" => Ok(Self::Off),
            Some(("keep", n)) => n.parse().map(Self::Keep).map_err(|_| bad()),
            Some(("age", age)) => {
                let split = age.char_indices().last().map_or(0, |(i, _)| i);
                let (number, unit) = age.split_at(split);
                let number: u64 = number.parse().map_err(|_| bad())?;
                let scale = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => return Err(bad()),
                };
                let secs = number.checked_mul(scale).ok_or_else(bad)?;
                Ok(Self::UnusedFor(Duration::from_secs(secs)))
            }
            _ => Err(bad()),
        }
    }
}

/// Which images the agent pulled: every name on a registry of `hosts` (the pool's centers and
/// proxies).
fn pulled_here(image: &ImageInfo, hosts: &BTreeSet<String>) -> bool {
    !image.names.is_empty()
        && image.names.iter().all(|name| {
            ImageRef::parse("image", name)
                .ok()
                .and_then(|r| r.registry)
                .is_some_and(|registry| hosts.contains(&registry))
        })
}

/// A name as the engine writes it: `repo` means `repo:latest`.
fn canonical(name: &str) -> String {
    match ImageRef::parse("image", name) {
        Ok(r) if r.tag.is_none() && r.digest.is_none() => format!("{name}:latest"),
        _ => name.to_string(),
    }
}

/// Whether any name of the image is wanted (digest references match by digest, since a
/// digest-named image lives under its proxy's name).
fn wanted(image: &ImageInfo, wanted: &BTreeSet<String>) -> bool {
    let wanted: BTreeSet<String> = wanted.iter().map(|w| canonical(w)).collect();
    let digests: BTreeSet<&str> = wanted
        .iter()
        .filter_map(|w| w.split_once('@').map(|(_, d)| d))
        .collect();
    image.names.iter().any(|name| {
        wanted.contains(&canonical(name))
            || name
                .split_once('@')
                .is_some_and(|(_, d)| digests.contains(d))
    })
}

/// The ids to remove now. `unused_since` remembers when each candidate was first seen unused
/// (and forgets images that are gone or wanted again).
pub fn choose(
    policy: PrunePolicy,
    images: &[ImageInfo],
    hosts: &BTreeSet<String>,
    wanted_images: &BTreeSet<String>,
    unused_since: &mut BTreeMap<String, Instant>,
    now: Instant,
) -> Vec<String> {
    let mut candidates: Vec<&ImageInfo> = images
        .iter()
        .filter(|i| pulled_here(i, hosts) && !wanted(i, wanted_images))
        .collect();
    unused_since.retain(|id, _| candidates.iter().any(|c| &c.id == id));
    for c in &candidates {
        unused_since.entry(c.id.clone()).or_insert(now);
    }
    match policy {
        PrunePolicy::Off => Vec::new(),
        PrunePolicy::Keep(n) => {
            // Newest first; what is beyond the first N goes.
            candidates.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
            candidates.iter().skip(n).map(|c| c.id.clone()).collect()
        }
        PrunePolicy::UnusedFor(age) => candidates
            .iter()
            .filter(|c| {
                unused_since
                    .get(&c.id)
                    .is_some_and(|since| now.duration_since(*since) >= age)
            })
            .map(|c| c.id.clone())
            .collect(),
    }
}

/// Prunes every `interval` until `cancel`.
pub async fn run<R: ContainerRuntime + ?Sized>(
    puller: Arc<Puller<R>>,
    policy: PrunePolicy,
    interval: Duration,
    cancel: CancellationToken,
) {
    if policy == PrunePolicy::Off {
        return;
    }
    let mut unused_since = BTreeMap::new();
    let mut beat = tokio::time::interval(interval);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = beat.tick() => {}
        }
        // Until every source of wanted images has reported once, nothing is known unused.
        let Some(mut wanted_images) = puller.wanted() else {
            continue;
        };
        // An image just found on the node may be about to get a container.
        wanted_images.extend(puller.recently_resolved());
        let hosts = puller.registry_hosts();
        if hosts.is_empty() {
            continue;
        }
        let images = match puller.runtime.list_images().await {
            Ok(images) => images,
            Err(e) => {
                tracing::debug!(error = %e, "listing images for pruning failed");
                continue;
            }
        };
        let chosen = choose(
            policy,
            &images,
            &hosts,
            &wanted_images,
            &mut unused_since,
            Instant::now(),
        );
        for id in chosen {
            let names = images
                .iter()
                .find(|i| i.id == id)
                .map(|i| i.names.join(", "))
                .unwrap_or_default();
            match puller.runtime.remove_image(&id).await {
                Ok(true) => {
                    unused_since.remove(&id);
                    tracing::info!(image = %names, ?policy, "pruned an unused image");
                }
                Ok(false) => tracing::debug!(image = %names, "image in use by a container; kept"),
                Err(e) => tracing::warn!(image = %names, error = %e, "pruning an image failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, names: &[&str], created: i64) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            created,
            size: 1,
        }
    }

    #[test]
    fn policies_parse_or_say_how_to_write_them() {
        assert_eq!(PrunePolicy::parse("keep:3"), Ok(PrunePolicy::Keep(3)));
        assert_eq!(
            PrunePolicy::parse("age:2h"),
            Ok(PrunePolicy::UnusedFor(Duration::from_secs(7200)))
        );
        assert_eq!(PrunePolicy::parse("off"), Ok(PrunePolicy::Off));
        for bad in [
            "keep",
            "keep:x",
            "age:2w",
            "age:h",
            "age:5\u{b5}",
            "age:99999999999999999d",
            "sometimes",
        ] {
            assert!(
                PrunePolicy::parse(bad).unwrap_err().contains("keep:N"),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_unwanted_images_pulled_from_the_center_go_newest_kept() {
        let hosts: BTreeSet<String> = ["center:5000".into(), "proxy:5001".into()].into();
        let digest = format!("sha256:{}", "a".repeat(64));
        let images = vec![
            image("old", &["center:5000/app:1"], 1),
            image("mid", &["center:5000/app:2", "proxy:5001/app:2"], 2),
            image("new", &["center:5000/app:3"], 3),
            image("running", &["center:5000/app:4"], 0),
            image("pause", &["caas/pause:abc"], 0),
            image("mixed", &["center:5000/app:5", "local/app:5"], 0),
            image("bydigest", &[&format!("proxy:5001/app@{digest}")], 0),
        ];
        let images: Vec<ImageInfo> = images
            .into_iter()
            .chain([image("latest", &["center:5000/other:latest"], 0)])
            .collect();
        let wanted: BTreeSet<String> = [
            "center:5000/other".to_string(),
            "center:5000/app:4".to_string(),
            format!("center:5000/app@{digest}"),
        ]
        .into();
        let mut since = BTreeMap::new();
        let now = Instant::now();
        let chosen = choose(
            PrunePolicy::Keep(1),
            &images,
            &hosts,
            &wanted,
            &mut since,
            now,
        );
        assert_eq!(
            chosen,
            ["mid", "old"],
            "newest kept; wanted, local and mixed never"
        );
        let chosen = choose(
            PrunePolicy::Keep(0),
            &images,
            &hosts,
            &wanted,
            &mut since,
            now,
        );
        assert_eq!(chosen, ["new", "mid", "old"]);

        // By age: only once seen unused for that long.
        let mut since = BTreeMap::new();
        let age = PrunePolicy::UnusedFor(Duration::from_secs(60));
        assert!(choose(age, &images, &hosts, &wanted, &mut since, now).is_empty());
        let later = now + Duration::from_secs(61);
        let mut chosen = choose(age, &images, &hosts, &wanted, &mut since, later);
        chosen.sort();
        assert_eq!(chosen, ["mid", "new", "old"]);
        // Wanted again: forgotten, the clock starts over.
        let wanted_again: BTreeSet<String> = ["center:5000/app:1".to_string()].into();
        choose(age, &images, &hosts, &wanted_again, &mut since, later);
        assert!(!since.contains_key("old"));
    }
}
