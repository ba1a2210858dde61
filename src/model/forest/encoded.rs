//! The parsed trees as bytes (`forest.bin`): what a load reads instead of the ONNX file, derived from
//! it once where a bundle enters (the registry's upload, `make generate` for the committed bundles)
//! and bound to it by its sha256.
//!
//! Why: in wasm a function compiles on its first call, so a cold load paid for decoding the ONNX
//! protobuf, rewriting its graph and parsing the tree attributes (about a third of a cold load)
//! with code that runs once. This format is read by one small loop.
//!
//! Layout, little-endian: `LSFOREST`, format (u32), the ONNX file's sha256 (32 bytes), the width
//! its input declares (u32, 0: none), base (f32), post transform (u8: 0 none, 1 logistic), layout
//! (u8: bit 0 weights on class 1, bit 1 all weights positive), labels (u8 0: two i64; 1: two
//! strings, each u32 length + UTF-8), the number of trees (u32), then each tree: its ONNX id (i64)
//! and its nodes in the kernel's order (pre-order, false child next): a tag (u8: 0 leaf, else 1 +
//! mode, bit 7 missing-goes-true), the ONNX node id (i64), then a leaf's value (f32) or a branch's
//! feature (u32) and threshold (f32). No child index is stored: the order gives the tree's shape,
//! so a decoded forest is a well-formed one whatever the bytes (or an error).

use super::*;
use crate::hex;

/// The first bytes of an encoded forest.
const MAGIC: &[u8; 8] = b"LSFOREST";
/// The layout's version; a reader refuses any other.
const FORMAT: u32 = 1;

/// A forest with what binds it to its model file.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedForest {
    /// Lowercase hex sha256 of the ONNX file it was derived from (the card's `model.sha256`).
    pub onnx_sha256: String,
    /// The input width the ONNX graph declares, if it declares one.
    pub declared_width: Option<usize>,
    /// The trees.
    pub forest: Forest,
}

fn bad(m: impl std::fmt::Display) -> ModelError {
    ModelError::Onnx(format!("forest.bin: {m}"))
}

impl EncodedForest {
    /// The bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let f = &self.forest.trees;
        let mut out = Vec::with_capacity(64 + f.nodes.len() * 17);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        let sha = hex::decode(&self.onnx_sha256)
            .filter(|s| s.len() == 32)
            .ok_or_else(|| bad("the model's sha256 is not 64 hex digits"))?;
        out.extend_from_slice(&sha);
        let width = match self.declared_width {
            None => 0,
            Some(w) => u32::try_from(w)
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| bad("declared width out of range"))?,
        };
        out.extend_from_slice(&width.to_le_bytes());
        out.extend_from_slice(&f.base.to_le_bytes());
        out.push(match f.post {
            PostTransform::None => 0,
            PostTransform::Logistic => 1,
        });
        out.push(match f.layout {
            Layout::WeightsOnClass0 {
                all_weights_positive,
            } => u8::from(all_weights_positive) << 1,
            Layout::WeightsOnClass1 {
                all_weights_positive,
            } => 1 | u8::from(all_weights_positive) << 1,
        });
        match &f.labels {
            ClassLabels::Int(l) => {
                out.push(0);
                l.iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            ClassLabels::Str(l) => {
                out.push(1);
                for s in l {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.forest.n_trees() as u32).to_le_bytes());
        for (t, w) in f.tree_starts.windows(2).enumerate() {
            out.extend_from_slice(&f.tree_ids[t].to_le_bytes());
            for i in w[0] as usize..w[1] as usize {
                let p = f.nodes[i];
                if p.feature == LEAF {
                    out.push(0);
                    out.extend_from_slice(&f.onnx_ids[i].to_le_bytes());
                    out.extend_from_slice(&p.value.to_le_bytes());
                } else {
                    let mode = (p.link >> MODE_SHIFT & 7) as u8;
                    let missing = if p.link & MISSING_BIT != 0 { 0x80 } else { 0 };
                    out.push((1 + mode) | missing);
                    out.extend_from_slice(&f.onnx_ids[i].to_le_bytes());
                    out.extend_from_slice(&p.feature.to_le_bytes());
                    out.extend_from_slice(&p.value.to_le_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Reads the bytes back: the forest the kernel and TreeSHAP run, rebuilt with every rule the
    /// ONNX parser applies to what it builds (depth, node count, finite values, unique node ids).
    pub fn from_bytes(bytes: &[u8]) -> Result<EncodedForest, ModelError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(bad("not an encoded forest"));
        }
        let format = r.u32()?;
        if format != FORMAT {
            return Err(bad(format!(
                "format {format} (this build reads {FORMAT}): derive it again"
            )));
        }
        let onnx_sha256 = hex::encode(r.take(32)?);
        let declared_width = match r.u32()? {
            0 => None,
            w => Some(w as usize),
        };
        let base = r.f32()?;
        if !base.is_finite() {
            return Err(bad("the base value is not finite"));
        }
        let post = match r.u8()? {
            0 => PostTransform::None,
            1 => PostTransform::Logistic,
            p => return Err(bad(format!("post transform {p}"))),
        };
        let layout = match r.u8()? {
            l @ 0..=3 => {
                let all_weights_positive = l & 2 != 0;
                if l & 1 == 0 {
                    Layout::WeightsOnClass0 {
                        all_weights_positive,
                    }
                } else {
                    Layout::WeightsOnClass1 {
                        all_weights_positive,
                    }
                }
            }
            l => return Err(bad(format!("layout {l}"))),
        };
        let labels = match r.u8()? {
            0 => ClassLabels::Int([r.i64()?, r.i64()?]),
            1 => ClassLabels::Str([r.string()?, r.string()?]),
            l => return Err(bad(format!("labels kind {l}"))),
        };
        let n_trees = r.u32()? as usize;
        if n_trees == 0 {
            return Err(bad("no trees"));
        }
        // At least 13 bytes per node: a count the bytes cannot hold is refused before allocating.
        let most_nodes = r.left() / 13;
        if n_trees > most_nodes {
            return Err(bad(format!("{n_trees} trees in {} bytes", r.left())));
        }
        let mut nodes: Vec<Packed> = Vec::with_capacity(most_nodes.min(MAX_NODES));
        let mut onnx_ids: Vec<i64> = Vec::with_capacity(nodes.capacity());
        let mut tree_starts: Vec<u32> = Vec::with_capacity(n_trees + 1);
        let mut tree_ids: Vec<i64> = Vec::with_capacity(n_trees);
        let mut depths: Vec<usize> = Vec::with_capacity(n_trees);
        // (true parent, depth) of each node still to read, as the flattening pushed them.
        let mut stack: Vec<(Option<usize>, usize)> = Vec::new();
        let mut ids: Vec<i64> = Vec::new();
        for _ in 0..n_trees {
            let tree_id = r.i64()?;
            let start = nodes.len();
            tree_starts.push(start as u32);
            tree_ids.push(tree_id);
            let mut depth = 0;
            stack.push((None, 0));
            while let Some((true_parent, d)) = stack.pop() {
                if d > MAX_DEPTH {
                    return Err(bad(format!("tree {tree_id} is deeper than {MAX_DEPTH}")));
                }
                depth = depth.max(d);
                let here = nodes.len();
                if here >= MAX_NODES {
                    return Err(bad(format!("more than {MAX_NODES} nodes")));
                }
                if let Some(p) = true_parent {
                    if let Some(parent) = nodes.get_mut(p) {
                        parent.link |= here as u32;
                    }
                }
                let tag = r.u8()?;
                onnx_ids.push(r.i64()?);
                if tag == 0 {
                    let value = r.f32()?;
                    if !value.is_finite() {
                        return Err(bad(format!("tree {tree_id}: a leaf value is not finite")));
                    }
                    nodes.push(Packed {
                        value,
                        feature: LEAF,
                        link: 0,
                    });
                    continue;
                }
                let mode = match (tag & 0x7f).checked_sub(1) {
                    Some(m @ 0..=5) => Mode::from_bits(u32::from(m)),
                    _ => return Err(bad(format!("tree {tree_id}: node tag {tag}"))),
                };
                let feature = r.u32()?;
                let threshold = r.f32()?;
                if feature == LEAF || threshold.is_nan() {
                    return Err(bad(format!(
                        "tree {tree_id}: a branch reads feature {feature} at {threshold}"
                    )));
                }
                let missing = if tag & 0x80 != 0 { MISSING_BIT } else { 0 };
                nodes.push(Packed {
                    value: threshold,
                    feature,
                    link: ((mode as u32) << MODE_SHIFT) | missing,
                });
                stack.push((Some(here), d + 1));
                stack.push((None, d + 1));
            }
            ids.clear();
            ids.extend_from_slice(&onnx_ids[start..]);
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return Err(bad(format!("tree {tree_id} repeats a node id")));
            }
            depths.push(depth);
        }
        if r.left() != 0 {
            return Err(bad(format!("{} bytes after the last tree", r.left())));
        }
        tree_starts.push(nodes.len() as u32);
        let mut sorted = tree_ids.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("a tree id appears twice"));
        }
        let forest = Forest::new(Trees {
            nodes,
            onnx_ids,
            tree_starts,
            tree_ids,
            depths,
            base,
            post,
            layout,
            labels,
        });
        // The declared width against the trees is the plan's check, for either source
        // (`plan::input_width`).
        Ok(EncodedForest {
            onnx_sha256,
            declared_width,
            forest,
        })
    }
}

/// Reads the layout's fields in order; each read fails on too few bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let got = end.and_then(|e| self.bytes.get(self.at..e));
        let got = got.ok_or_else(|| bad(format!("cut short at byte {}", self.at)))?;
        self.at += n;
        Ok(got)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, ModelError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("a class label is not UTF-8"))
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name);
        std::fs::read(dir.join("model.onnx")).unwrap()
    }

    fn encoded(name: &str) -> (EncodedForest, Vec<u8>) {
        let onnx = committed(name);
        let e = EncodedForest {
            onnx_sha256: crate::model::sha256_hex(&onnx),
            declared_width: None,
            forest: Forest::from_onnx_bytes(&onnx).unwrap(),
        };
        let bytes = e.to_bytes().unwrap();
        (e, bytes)
    }

    #[test]
    fn every_committed_forest_reads_back_equal() {
        for name in ["default", "candidate", "b2b-example", "b2b-rules"] {
            let (e, bytes) = encoded(name);
            assert_eq!(EncodedForest::from_bytes(&bytes).unwrap(), e, "{name}");
        }
    }

    #[test]
    fn any_cut_or_flipped_byte_is_an_error_or_a_well_formed_forest() {
        let (_, bytes) = encoded("b2b-rules");
        for cut in 0..bytes.len() {
            assert!(
                EncodedForest::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let x = vec![0.5f32; 64];
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                // Whatever it reads as, walking it and (at a width a card could give it: a load
                // refuses trees that read past the card's features) scoring it must not panic.
                if let Ok(e) = EncodedForest::from_bytes(&b) {
                    assert!(e.forest.trees().all(|t| t.nodes().count() == t.len()));
                    if e.forest.n_features() <= x.len() {
                        let _ = e.forest.margin(&x);
                    }
                }
            }
        }
        assert!(EncodedForest::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
    }
}
