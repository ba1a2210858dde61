//! A state as bytes (postcard, versioned) and back, refusing bytes that do not fit the site.

use super::*;

impl VisitorState {
    /// Compact binary form (postcard) for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Restores a state written by [`VisitorState::to_bytes`], checking it fits the configuration.
    pub fn from_bytes(bytes: &[u8], cfg: &StateConfig) -> Result<VisitorState, StateError> {
        let mut s: VisitorState = match bytes.first() {
            Some(&STATE_VERSION) => {
                postcard::from_bytes(bytes).map_err(|e| StateError::Decode(e.to_string()))?
            }
            // Older versions lack only trailing fields, each read as empty (one 0 byte): version 2
            // the signals, the identify time and the dropped traits; version 1 also `merged`.
            Some(&2) => postcard::from_bytes(&[bytes, &[0, 0, 0]].concat())
                .map_err(|e| StateError::Decode(e.to_string()))?,
            Some(&1) => postcard::from_bytes(&[bytes, &[0, 0, 0, 0]].concat())
                .map_err(|e| StateError::Decode(e.to_string()))?,
            Some(&v) => return Err(StateError::Version(v)),
            None => return Err(StateError::Decode("empty".into())),
        };
        s.version = STATE_VERSION;
        s.fit_signals(&cfg.signals);
        if !s.fits(cfg) {
            return Err(s.shape_error(cfg));
        }
        s.sanitize();
        Ok(s)
    }

    pub(super) fn shape_error(&self, cfg: &StateConfig) -> StateError {
        StateError::Shape(format!(
            "expected {} page classes, {} stats, {} half-lives",
            cfg.site.n_classes(),
            cfg.site.n_stats(),
            cfg.half_lives.len()
        ))
    }

    /// Whether the vectors have the configuration's shapes and the bounded lists their bounds.
    pub(super) fn fits(&self, cfg: &StateConfig) -> bool {
        let s = self;
        let n = cfg.site.n_classes();
        let k = cfg.site.n_stats();
        s.views.len() == n
            && s.engaged_ms.len() == n
            && s.session.views.len() == n
            && s.session.engaged_ms.len() == n
            && s.session.first_view.len() == n
            && s.session.stat_sums.len() == k
            && s.decayed.len() == cfg.half_lives.len()
            && usize::from(s.session.current_class) < n.max(1)
            && s.recent_ids.len() == s.recent_ts.len()
            && s.recent_ids.len() <= DEDUP_WINDOW
            && s.traits.len() <= MAX_TRAITS
            && s.merged.len() <= MAX_MERGED
            && s.signals.len() == cfg.signals.len()
            && s.signals.iter().zip(&cfg.signals).all(|(a, g)| a.fits(g))
            && n <= MAX_CLASSES
            && k <= MAX_STATS
            && usize::from(s.first_channel) < channel::CHANNELS.len()
            && usize::from(s.session.channel) < channel::CHANNELS.len()
    }
}
