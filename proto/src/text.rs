//! Text files as offices and statisticians write them: UTF-8 (with or without a
//! byte-order mark) or GBK, which Excel on Chinese Windows writes by default.

/// The encoding a file turned out to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    /// GBK, decoded as its superset GB 18030.
    Gbk,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the file is neither UTF-8 nor GBK text (undecodable bytes near byte {offset}); save it from Excel as \"CSV UTF-8\" or plain CSV"
)]
pub struct DecodeError {
    pub offset: usize,
}

/// Decodes file contents: UTF-8 if they are valid UTF-8 (a BOM is dropped),
/// otherwise GBK. Fails if they are neither.
pub fn decode(bytes: &[u8]) -> Result<(String, TextEncoding), DecodeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), TextEncoding::Utf8)),
        Err(utf8_err) => {
            let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
            if had_errors {
                let offset = text.find('\u{FFFD}').map(|_| utf8_err.valid_up_to()).unwrap_or(0);
                Err(DecodeError { offset })
            } else {
                Ok((text.into_owned(), TextEncoding::Gbk))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode("调解,成功".as_bytes()).unwrap(), ("调解,成功".to_string(), TextEncoding::Utf8));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice("日期".as_bytes());
        assert_eq!(decode(&bom).unwrap().0, "日期");
    }

    #[test]
    fn gbk() {
        let (gbk, _, _) = encoding_rs::GBK.encode("敦煌市,沙州镇司法所");
        assert_eq!(decode(&gbk).unwrap(), ("敦煌市,沙州镇司法所".to_string(), TextEncoding::Gbk));
    }

    #[test]
    fn garbage_is_an_error() {
        let e = decode(&[0x41, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert!(e.to_string().contains("neither UTF-8 nor GBK"), "{e}");
    }
}
