//! `--cache-to type=inline`: the final image's steps in its own config
//! ([`super::remote::INLINE_KEY`]), read back by `--cache-from IMAGE`.

use std::collections::BTreeMap;

use super::export::select;
use super::remote::{InlineCache, InlineEntry, VERSION};
use super::Used;
use crate::flags::CacheMode;

/// The inline cache of an image whose last step is `final_key`: its
/// steps (`mode=min`), layers named by diff ID.
pub fn inline(used: &[Used], aliases: &[(String, String)], final_key: &str) -> InlineCache {
    let steps: BTreeMap<String, InlineEntry> = select(used, final_key, CacheMode::Min)
        .into_iter()
        .map(|u| {
            (
                u.key.clone(),
                InlineEntry {
                    parent: u.parent.clone(),
                    created: u.rec.created.clone(),
                    diff_id: u.rec.layer.as_ref().map(|l| l.digest.clone()),
                    size: u.rec.layer.as_ref().map_or(0, |l| l.size),
                },
            )
        })
        .collect();
    let aliases = aliases
        .iter()
        .filter(|(_, k)| steps.contains_key(k))
        .cloned()
        .collect();
    InlineCache {
        version: VERSION,
        steps,
        aliases,
    }
}
