//! Histograms in HdrHistogram's interchange encoding: the V2 format, deflate-compressed,
//! in base64 — what `HistogramLogProcessor`, HdrHistogram.js and the other
//! implementations decode (as in an interval log's histogram column).

use std::io;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// `h` as base64 of its compressed V2 encoding.
pub fn to_base64(h: &Histogram<u64>) -> io::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| io::Error::other(format!("histogram encoding: {e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn an_encoded_histogram_decodes_to_the_same_counts() {
        let mut h = crate::bench::common::new_hist();
        for v in [1u64, 10, 100, 1000, 250_000, 250_000] {
            h.record(v).unwrap();
        }
        let text = to_base64(&h).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .unwrap();
        // The compressed V2 cookie, big-endian, as other implementations check it.
        assert_eq!(&bytes[..4], &0x1c84_9314u32.to_be_bytes());
        let back: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back, h);
    }
}
