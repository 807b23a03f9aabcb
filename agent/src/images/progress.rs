//! Adding up the engine's per-layer pull messages into one `PullProgress` (layers and bytes).

use std::collections::BTreeMap;

use caas_api::PullProgress;

use crate::runtime::PullEvent;

#[derive(Debug, Default, Clone, Copy)]
struct Layer {
    downloaded: u64,
    size: u64,
    done: bool,
}

/// The layers seen so far in one pull.
#[derive(Debug, Default)]
pub struct Tally {
    layers: BTreeMap<String, Layer>,
}

impl Tally {
    pub fn add(&mut self, event: &PullEvent) {
        // Messages without a layer ("Pulling from ...", "Digest: ...", "Status: ...") and the
        // manifest's own line (its id is the tag) carry no layer progress.
        let Some(id) = &event.layer else { return };
        let status = event.status.as_str();
        let is_layer = matches!(
            status,
            "Pulling fs layer"
                | "Waiting"
                | "Downloading"
                | "Verifying Checksum"
                | "Download complete"
                | "Extracting"
                | "Pull complete"
                | "Already exists"
        );
        if !is_layer {
            return;
        }
        let layer = self.layers.entry(id.clone()).or_default();
        match status {
            "Downloading" => {
                if let Some(total) = event.total {
                    layer.size = total;
                }
                if let Some(current) = event.current {
                    layer.downloaded = current;
                }
            }
            "Download complete" | "Verifying Checksum" | "Extracting" => {
                layer.downloaded = layer.size;
            }
            "Pull complete" | "Already exists" => {
                layer.downloaded = layer.size;
                layer.done = true;
            }
            _ => {}
        }
    }

    pub fn progress(&self, image: &str, via: &str) -> PullProgress {
        let count = |f: fn(&Layer) -> bool| {
            u32::try_from(self.layers.values().filter(|l| f(l)).count()).unwrap_or(u32::MAX)
        };
        PullProgress {
            image: image.to_string(),
            via: via.to_string(),
            layers_total: count(|_| true),
            layers_done: count(|l| l.done),
            bytes_total: self.layers.values().map(|l| l.size).sum(),
            bytes_done: self.layers.values().map(|l| l.downloaded).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(layer: &str, status: &str, current: Option<u64>, total: Option<u64>) -> PullEvent {
        PullEvent {
            layer: Some(layer.into()),
            status: status.into(),
            current,
            total,
        }
    }

    #[test]
    fn layers_and_bytes_add_up_as_the_engine_reports_them() {
        let mut tally = Tally::default();
        tally.add(&event("1.4", "Pulling from team/app", None, None));
        tally.add(&event("a", "Pulling fs layer", None, None));
        tally.add(&event("b", "Pulling fs layer", None, None));
        tally.add(&event("a", "Downloading", Some(100), Some(1000)));
        tally.add(&event("b", "Downloading", Some(50), Some(200)));
        let p = tally.progress("img", "proxy:5001");
        assert_eq!((p.layers_done, p.layers_total), (0, 2));
        assert_eq!((p.bytes_done, p.bytes_total), (150, 1200));
        tally.add(&event("b", "Download complete", None, None));
        tally.add(&event("b", "Extracting", Some(10), Some(999)));
        tally.add(&event("b", "Pull complete", None, None));
        let p = tally.progress("img", "proxy:5001");
        assert_eq!((p.layers_done, p.layers_total), (1, 2));
        assert_eq!((p.bytes_done, p.bytes_total), (300, 1200));
        tally.add(&event("c", "Already exists", None, None));
        assert_eq!(tally.progress("img", "p").layers_done, 2);
    }
}
