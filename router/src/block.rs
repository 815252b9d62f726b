//! The reference router's block payload: `[hash 32][prev_hash 32][height 8]` then padding to the
//! block's size, so a block carries its place in the chain without a real block format.

use crate::types::BlockHeader;

const BLOCK_HEADER_LEN: usize = 72;

pub fn encode_block(header: &BlockHeader, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size.max(BLOCK_HEADER_LEN));
    bytes.extend_from_slice(&header.hash);
    bytes.extend_from_slice(&header.prev_hash);
    bytes.extend_from_slice(&header.height.to_le_bytes());
    bytes.resize(size.max(BLOCK_HEADER_LEN), 0);
    bytes
}

pub fn decode_block_header(bytes: &[u8]) -> Option<BlockHeader> {
    let header = bytes.get(..BLOCK_HEADER_LEN)?;
    Some(BlockHeader {
        hash: header[..32].try_into().ok()?,
        prev_hash: header[32..64].try_into().ok()?,
        height: u64::from_le_bytes(header[64..72].try_into().ok()?),
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_header_round_trips_through_the_payload() {
        let h = BlockHeader {
            prev_hash: [6; 32],
            hash: [7; 32],
            height: 42,
        };
        let bytes = encode_block(&h, 1000);
        assert_eq!(bytes.len(), 1000);
        assert_eq!(decode_block_header(&bytes), Some(h));
        assert_eq!(decode_block_header(&bytes[..71]), None);
    }
}
