//! Splitting a proposed block into gossiped parts, and putting received parts back together.
//!
//! A stream is `Init`, one or more `Data` chunks and `Fin` (the value id and the proposer's
//! signature), then the stream's end marker. Receivers group messages by publisher and stream id,
//! bound how much they buffer, and hand over a stream only once every sequence number up to the
//! end marker has arrived.

use std::collections::BTreeMap;

use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::PeerId;
use bytes::Bytes;

use crate::context::{PartFin, PartInit, ProposalPart};

/// Size of one data part.
pub(crate) const CHUNK_BYTES: usize = 128 * 1024;
/// Most streams buffered at once; the oldest is dropped beyond it.
const MAX_STREAMS: usize = 64;

/// A fully received stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Assembled {
    pub(crate) init: PartInit,
    pub(crate) fin: PartFin,
    pub(crate) bytes: Bytes,
}

/// The stream messages for a value: `Init`, data chunks, `Fin`, end of stream.
pub(crate) fn stream_messages(
    stream_id: StreamId,
    init: PartInit,
    bytes: &Bytes,
    fin: PartFin,
) -> Vec<StreamMessage<ProposalPart>> {
    let mut parts = vec![ProposalPart::Init(init)];
    let mut offset = 0;
    loop {
        let end = (offset + CHUNK_BYTES).min(bytes.len());
        parts.push(ProposalPart::Data(bytes.slice(offset..end)));
        offset = end;
        if offset >= bytes.len() {
            break;
        }
    }
    parts.push(ProposalPart::Fin(fin));
    let mut messages: Vec<StreamMessage<ProposalPart>> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(stream_id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    let end = messages.len() as u64;
    messages.push(StreamMessage::new(stream_id, end, StreamContent::Fin));
    messages
}

#[derive(Default)]
struct Partial {
    messages: BTreeMap<u64, StreamContent<ProposalPart>>,
    end: Option<u64>,
    bytes: usize,
    age: u64,
}

/// Streams being received.
pub(crate) struct Streams {
    partial: BTreeMap<(PeerId, StreamId), Partial>,
    max_value_bytes: usize,
    max_messages: u64,
    clock: u64,
}

/// Why a stream was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StreamError {
    /// More bytes or messages than any valid value needs.
    #[error("stream exceeds {0}")]
    TooLarge(&'static str),
    /// Parts out of shape (not `Init`, data…, `Fin`).
    #[error("malformed stream: {0}")]
    Malformed(&'static str),
}

impl Streams {
    pub(crate) fn new(max_value_bytes: usize) -> Self {
        // Init, the data chunks, Fin and the end marker.
        let max_messages = (max_value_bytes / CHUNK_BYTES) as u64 + 4;
        Streams {
            partial: BTreeMap::new(),
            max_value_bytes,
            max_messages,
            clock: 0,
        }
    }

    /// Adds a message from `publisher`; returns the value once its stream is complete.
    pub(crate) fn insert(
        &mut self,
        publisher: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<Assembled>, StreamError> {
        let key = (publisher, msg.stream_id.clone());
        if msg.sequence >= self.max_messages {
            self.partial.remove(&key);
            return Err(StreamError::TooLarge("the message limit"));
        }
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_STREAMS {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.age)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.partial.remove(&oldest);
            }
        }
        self.clock += 1;
        let age = self.clock;
        let partial = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            age,
            ..Partial::default()
        });
        if let StreamContent::Data(ProposalPart::Data(chunk)) = &msg.content {
            partial.bytes += chunk.len();
        }
        if partial.bytes > self.max_value_bytes {
            self.partial.remove(&key);
            return Err(StreamError::TooLarge("the value size limit"));
        }
        if msg.content.is_fin() {
            partial.end = Some(msg.sequence);
        }
        partial.messages.insert(msg.sequence, msg.content);
        let complete = partial
            .end
            .is_some_and(|end| partial.messages.len() as u64 == end + 1);
        if !complete {
            return Ok(None);
        }
        let Some(partial) = self.partial.remove(&key) else {
            return Ok(None);
        };
        assemble(partial.messages.into_values().collect()).map(Some)
    }
}

fn assemble(messages: Vec<StreamContent<ProposalPart>>) -> Result<Assembled, StreamError> {
    let mut parts = messages.into_iter();
    let Some(StreamContent::Data(ProposalPart::Init(init))) = parts.next() else {
        return Err(StreamError::Malformed("the first part is not Init"));
    };
    let mut data = Vec::new();
    let mut fin = None;
    for content in parts {
        match (content, &fin) {
            (StreamContent::Data(ProposalPart::Data(chunk)), None) => {
                data.extend_from_slice(&chunk)
            }
            (StreamContent::Data(ProposalPart::Fin(f)), None) => fin = Some(f),
            (StreamContent::Fin, Some(_)) => {}
            _ => return Err(StreamError::Malformed("parts out of order")),
        }
    }
    let fin = fin.ok_or(StreamError::Malformed("no Fin part"))?;
    Ok(Assembled {
        init,
        fin,
        bytes: Bytes::from(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_app_channel::app::types::core::Round;
    use arc_malachitebft_signing_ed25519::Signature as EdSignature;
    use custos_crypto::{SecretKey, SigningKeyPair, sha256};

    use crate::context::{Address, Height};

    fn fixture(len: usize) -> (PartInit, PartFin, Bytes) {
        let key = SigningKeyPair::from_secret(&SecretKey::from_slice(&[5; 32]).unwrap());
        let bytes = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
        (
            PartInit {
                height: Height(7),
                round: Round::new(2),
                pol_round: Round::Nil,
                proposer: Address(key.public()),
            },
            PartFin {
                value_id: sha256(&bytes),
                signature: EdSignature::from_bytes([1; 64]),
            },
            bytes,
        )
    }

    fn peer() -> PeerId {
        // An identity multihash: code 0, length 4, digest.
        PeerId::from_bytes(&[0, 4, 1, 2, 3, 4]).unwrap()
    }

    #[test]
    fn a_stream_delivered_out_of_order_reassembles_once_complete() {
        let (init, fin, bytes) = fixture(3 * CHUNK_BYTES + 17);
        let mut messages = stream_messages(
            StreamId::new(Bytes::from_static(b"s")),
            init.clone(),
            &bytes,
            fin.clone(),
        );
        assert_eq!(messages.len(), 1 + 4 + 1 + 1);
        messages.reverse();
        let mut streams = Streams::new(16 * CHUNK_BYTES);
        let from = peer();
        let last = messages.pop().unwrap();
        for m in messages {
            assert_eq!(streams.insert(from, m).unwrap(), None);
        }
        let done = streams.insert(from, last).unwrap().unwrap();
        assert_eq!(done, Assembled { init, fin, bytes });
    }

    #[test]
    fn an_oversized_stream_is_dropped() {
        let (init, fin, bytes) = fixture(3 * CHUNK_BYTES);
        let messages = stream_messages(StreamId::new(Bytes::from_static(b"s")), init, &bytes, fin);
        let mut streams = Streams::new(2 * CHUNK_BYTES);
        let from = peer();
        let results: Vec<_> = messages
            .into_iter()
            .map(|m| streams.insert(from, m))
            .collect();
        assert!(results.iter().any(|r| r.is_err()));
    }

    #[test]
    fn parts_out_of_shape_are_refused() {
        let (init, fin, bytes) = fixture(10);
        let id = StreamId::new(Bytes::from_static(b"s"));
        let mut streams = Streams::new(CHUNK_BYTES);
        let from = peer();
        let bad = vec![
            StreamMessage::new(id.clone(), 0, StreamContent::Data(ProposalPart::Fin(fin))),
            StreamMessage::new(
                id.clone(),
                1,
                StreamContent::Data(ProposalPart::Data(bytes)),
            ),
            StreamMessage::new(id.clone(), 2, StreamContent::Data(ProposalPart::Init(init))),
            StreamMessage::new(id, 3, StreamContent::Fin),
        ];
        let results: Vec<_> = bad.into_iter().map(|m| streams.insert(from, m)).collect();
        assert!(matches!(
            results.last(),
            Some(Err(StreamError::Malformed(_)))
        ));
    }
}
