//! Durable store of the values this node proposed, received or synced and has not yet committed.
//!
//! Votes and proposals carry only a block's id; the block itself is kept here so that a decision
//! can be committed, a proposal restreamed, and — after a crash — the same value proposed again for
//! the same height and round. One file per value, `values/<height>/<round>-<id>.v`, written to a
//! temporary file, synced and renamed before the engine hears of the value. Heights at or below
//! the committed height are pruned.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use arc_malachitebft_app_channel::app::types::core::{Round, Validity};
use arc_malachitebft_signing_ed25519::Signature as EdSignature;
use bytes::Bytes;
use custos_crypto::Hash;

use crate::codec::{CodecError, Reader, Writer, kind};
use crate::context::{Address, Height};

/// A value with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredValue {
    pub(crate) height: Height,
    pub(crate) round: Round,
    pub(crate) valid_round: Round,
    pub(crate) proposer: Address,
    pub(crate) value_id: Hash,
    pub(crate) validity: Validity,
    /// The proposer's signature over the streamed value; none for a synced value.
    pub(crate) signature: Option<EdSignature>,
    pub(crate) bytes: Bytes,
}

impl StoredValue {
    fn encode(&self) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::STORED_VALUE);
        w.height(self.height);
        w.round(self.round);
        w.round(self.valid_round);
        w.address(&self.proposer);
        w.hash(&self.value_id);
        w.u8(u8::from(self.validity.is_valid()));
        match &self.signature {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.signature(s);
            }
        }
        w.bytes(&self.bytes)?;
        Ok(w.finish())
    }

    fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes, kind::STORED_VALUE)?;
        let height = r.height()?;
        let round = r.round()?;
        let valid_round = r.round()?;
        let proposer = r.address()?;
        let value_id = r.hash()?;
        let validity = Validity::from_bool(r.u8()? == 1);
        let signature = match r.u8()? {
            0 => None,
            _ => Some(r.signature()?),
        };
        let bytes = r.bytes()?;
        r.finish()?;
        Ok(StoredValue {
            height,
            round,
            valid_round,
            proposer,
            value_id,
            validity,
            signature,
            bytes,
        })
    }
}

/// The value files under one folder.
pub(crate) struct ValueStore {
    root: PathBuf,
}

fn height_dir_name(height: Height) -> String {
    format!("{:020}", height.0)
}

fn file_name(round: Round, id: &Hash) -> String {
    format!("{:010}-{}.v", round.as_u32().unwrap_or(0), id.to_hex())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

impl ValueStore {
    /// Opens (creating) the store under `root`.
    pub(crate) fn open(root: PathBuf) -> anyhow::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(ValueStore { root })
    }

    fn height_dir(&self, height: Height) -> PathBuf {
        self.root.join(height_dir_name(height))
    }

    /// Writes `value` durably (replacing a record of the same height, round and id).
    pub(crate) fn put(&self, value: &StoredValue) -> anyhow::Result<()> {
        let dir = self.height_dir(value.height);
        let fresh_dir = !dir.exists();
        fs::create_dir_all(&dir)?;
        if fresh_dir {
            sync_dir(&self.root)?;
        }
        let name = file_name(value.round, &value.value_id);
        let tmp = dir.join(format!("{name}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&value.encode()?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(&name))?;
        sync_dir(&dir)?;
        Ok(())
    }

    /// The file names stored for `height`, parsed as (round, id), in round then id order.
    fn names(&self, height: Height) -> Vec<(u32, String, PathBuf)> {
        let Ok(entries) = fs::read_dir(self.height_dir(height)) else {
            return Vec::new();
        };
        let mut names: Vec<(u32, String, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.strip_suffix(".v")?.to_owned();
                let (round, id) = name.split_once('-')?;
                Some((round.parse().ok()?, id.to_owned(), p))
            })
            .collect();
        names.sort();
        names
    }

    fn read(&self, height: Height, path: &Path) -> Option<StoredValue> {
        let bytes = fs::read(path).ok()?;
        match StoredValue::decode(Bytes::from(bytes)) {
            Ok(v) if v.height == height => Some(v),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unreadable stored value");
                None
            }
        }
    }

    /// Every value stored for `height`, in round then id order; unreadable files are skipped.
    #[cfg(test)]
    pub(crate) fn at_height(&self, height: Height) -> Vec<StoredValue> {
        self.names(height)
            .into_iter()
            .filter_map(|(_, _, p)| self.read(height, &p))
            .collect()
    }

    /// The values stored for `height` and `round`.
    pub(crate) fn at_round(&self, height: Height, round: Round) -> Vec<StoredValue> {
        let Some(round) = round.as_u32() else {
            return Vec::new();
        };
        self.names(height)
            .into_iter()
            .filter(|(r, _, _)| *r == round)
            .filter_map(|(_, _, p)| self.read(height, &p))
            .collect()
    }

    /// How many values are stored for `height` and `round`.
    pub(crate) fn count_at_round(&self, height: Height, round: Round) -> usize {
        let round = round.as_u32().unwrap_or(0);
        self.names(height)
            .iter()
            .filter(|(r, _, _)| *r == round)
            .count()
    }

    /// A valid stored value of `height` with id `value_id`, preferring one signed by its proposer.
    pub(crate) fn by_id(&self, height: Height, value_id: &Hash) -> Option<StoredValue> {
        let hex = value_id.to_hex();
        let mut found: Vec<StoredValue> = self
            .names(height)
            .into_iter()
            .filter(|(_, id, _)| *id == hex)
            .filter_map(|(_, _, p)| self.read(height, &p))
            .filter(|v| v.validity.is_valid())
            .collect();
        found.sort_by_key(|v| v.signature.is_none());
        found.into_iter().next()
    }

    /// Removes every height at or below `height`.
    pub(crate) fn prune_through(&self, height: Height) -> anyhow::Result<()> {
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let Some(h) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if h <= height.0 {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_crypto::{SecretKey, SigningKeyPair, sha256};

    fn value(height: u64, round: u32, body: &[u8], signed: bool) -> StoredValue {
        let key = SigningKeyPair::from_secret(&SecretKey::from_slice(&[9; 32]).unwrap());
        StoredValue {
            height: Height(height),
            round: Round::new(round),
            valid_round: Round::Nil,
            proposer: Address(key.public()),
            value_id: sha256(body),
            validity: Validity::Valid,
            signature: signed.then(|| EdSignature::from_bytes([7; 64])),
            bytes: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn stored_values_survive_reopening_and_are_pruned_by_height() {
        let dir = tempfile::tempdir().unwrap();
        let a = value(3, 0, b"a", true);
        let b = value(3, 1, b"b", false);
        let c = value(4, 0, b"c", true);
        {
            let store = ValueStore::open(dir.path().join("values")).unwrap();
            for v in [&a, &b, &c] {
                store.put(v).unwrap();
            }
        }
        let store = ValueStore::open(dir.path().join("values")).unwrap();
        assert_eq!(store.at_height(Height(3)), vec![a.clone(), b.clone()]);
        assert_eq!(store.at_round(Height(3), Round::new(1)), vec![b.clone()]);
        assert_eq!(store.by_id(Height(3), &a.value_id), Some(a));
        assert_eq!(store.by_id(Height(4), &b.value_id), None);
        store.prune_through(Height(3)).unwrap();
        assert!(store.at_height(Height(3)).is_empty());
        assert_eq!(store.at_height(Height(4)), vec![c]);
    }
}
