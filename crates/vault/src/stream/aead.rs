//! ChaCha20-Poly1305 (RFC 8439) in place, byte for byte what the `chacha20poly1305` crate
//! computes, with Poly1305 fed so that the ciphertext stays on its four-block path.
//!
//! poly1305 0.8 hashes four blocks at a time only while no block is left over from an earlier
//! call, and its AVX2 backend keeps a remainder of up to three. The chunk AAD is seven blocks,
//! so behind `chacha20poly1305` (which hashes the padded AAD, then the padded ciphertext)
//! every ciphertext block of every chunk went through the one-block path, about a fifth more
//! Poly1305 time. Here the AAD's last partial group of four blocks is completed with the first
//! ciphertext blocks, so the rest of the ciphertext starts on a group boundary. The bytes
//! authenticated, and so the tags, are unchanged.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use poly1305::Poly1305;
use poly1305::universal_hash::{Error, KeyInit, UniversalHash};
use zeroize::Zeroize;

use super::TAG_LEN;

/// Four Poly1305 blocks: what poly1305's parallel path consumes at once.
const GROUP: usize = 64;
/// A ChaCha20 block; the keystream after the first one encrypts.
const CHACHA_BLOCK: u64 = 64;

/// A chunk's tag.
pub(super) type Tag = [u8; TAG_LEN];

/// The keystream positioned at the first ciphertext byte, and the one-time Poly1305 key.
fn start(key: &[u8; 32], nonce: &[u8; 12]) -> (ChaCha20, Poly1305) {
    let mut cipher = ChaCha20::new(key.into(), nonce.into());
    let mut mac_key = poly1305::Key::default();
    cipher.apply_keystream(&mut mac_key);
    let mac = Poly1305::new(&mac_key);
    mac_key.zeroize();
    cipher.seek(CHACHA_BLOCK);
    (cipher, mac)
}

/// Encrypts `buf` in place and returns its tag.
pub(super) fn seal_in_place(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Tag {
    let (mut cipher, mut mac) = start(key, nonce);
    cipher.apply_keystream(buf);
    authenticate(&mut mac, aad, buf);
    mac.finalize().into()
}

/// Verifies `tag` (in constant time) and only then decrypts `buf` in place; on a mismatch
/// `buf` is left as it was.
pub(super) fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &Tag,
) -> Result<(), Error> {
    let (mut cipher, mut mac) = start(key, nonce);
    authenticate(&mut mac, aad, buf);
    mac.verify(tag.into())?;
    cipher.apply_keystream(buf);
    Ok(())
}

/// Hashes `pad16(aad) ‖ pad16(ciphertext) ‖ len(aad) ‖ len(ciphertext)` (lengths u64 LE).
fn authenticate(mac: &mut Poly1305, aad: &[u8], ciphertext: &[u8]) {
    let whole = aad.len() - aad.len() % GROUP;
    mac.update_padded(&aad[..whole]);
    // The AAD's tail, zero-padded to a block, then ciphertext up to the next group boundary
    // (a whole number of blocks unless the ciphertext ends there, where padding is due anyway).
    let tail = &aad[whole..];
    let padded = tail.len().next_multiple_of(16);
    let head = ((GROUP - padded) % GROUP).min(ciphertext.len());
    let mut bridge = [0u8; GROUP];
    bridge[..tail.len()].copy_from_slice(tail);
    bridge[padded..padded + head].copy_from_slice(&ciphertext[..head]);
    mac.update_padded(&bridge[..padded + head]);
    mac.update_padded(&ciphertext[head..]);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    mac.update(&[lengths.into()]);
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::ChaCha20Poly1305;
    use chacha20poly1305::aead::{AeadInPlace, KeyInit as _};
    use proptest::prelude::*;

    use super::*;

    fn reference(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        let tag = ChaCha20Poly1305::new(key.into())
            .encrypt_in_place_detached(nonce.into(), aad, &mut buf)
            .unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    proptest! {
        #[test]
        fn sealing_matches_the_chacha20poly1305_crate(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..200),
            plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut buf = plaintext.clone();
            let tag = seal_in_place(&key, &nonce, &aad, &mut buf);
            buf.extend_from_slice(&tag);
            prop_assert_eq!(&buf, &reference(&key, &nonce, &aad, &plaintext));

            let (ciphertext, tag) = buf.split_at(plaintext.len());
            let mut opened = ciphertext.to_vec();
            prop_assert!(open_in_place(&key, &nonce, &aad, &mut opened, &tag.try_into().unwrap()).is_ok());
            prop_assert_eq!(opened, plaintext);
        }

        #[test]
        fn opening_refuses_any_flipped_bit_and_leaves_the_buffer(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 1..120),
            plaintext in proptest::collection::vec(any::<u8>(), 1..300),
            which in any::<prop::sample::Index>(),
            bit in 0..8u8,
        ) {
            let sealed = reference(&key, &nonce, &aad, &plaintext);
            let mut aad = aad;
            let mut sealed = sealed;
            let at = which.index(aad.len() + sealed.len());
            if at < aad.len() {
                aad[at] ^= 1 << bit;
            } else {
                sealed[at - aad.len()] ^= 1 << bit;
            }
            let (ciphertext, tag) = sealed.split_at(plaintext.len());
            let mut buf = ciphertext.to_vec();
            prop_assert!(open_in_place(&key, &nonce, &aad, &mut buf, &tag.try_into().unwrap()).is_err());
            prop_assert_eq!(buf, ciphertext);
        }
    }

    #[test]
    fn a_full_chunk_with_the_stream_aad_matches_the_crate() {
        // The shape that matters for speed: a 101-byte AAD and a 64 KiB chunk.
        let key = [7u8; 32];
        let nonce = [3u8; 12];
        let aad: Vec<u8> = (0..101u8).collect();
        let plaintext: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let mut buf = plaintext.clone();
        let tag = seal_in_place(&key, &nonce, &aad, &mut buf);
        buf.extend_from_slice(&tag);
        assert_eq!(buf, reference(&key, &nonce, &aad, &plaintext));
    }
}
