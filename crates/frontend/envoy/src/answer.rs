//! The `Check` answer as sent: a `CheckResponse` whose dynamic metadata is already
//! protobuf bytes ([`crate::metadata`] writes them from the token's payload in one
//! pass), so no `google.protobuf.Struct` tree is built for each answer.

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, key_len,
};

/// `CheckResponse.dynamic_metadata`'s field number.
const DYNAMIC_METADATA: u32 = 4;

/// `envoy.service.auth.v3.CheckResponse` on the wire: `response` (whose own
/// `dynamic_metadata` stays `None`) and `metadata`, the encoded
/// `google.protobuf.Struct` of field 4. Decoding one (tests) reads field 4 back
/// into `metadata`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CheckAnswer {
    pub(crate) response: CheckResponse,
    pub(crate) metadata: Option<Vec<u8>>,
}

impl From<CheckResponse> for CheckAnswer {
    fn from(response: CheckResponse) -> CheckAnswer {
        CheckAnswer {
            response,
            metadata: None,
        }
    }
}

impl prost::Message for CheckAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.response.encode_raw(buf);
        if let Some(metadata) = &self.metadata {
            encode_key(DYNAMIC_METADATA, WireType::LengthDelimited, buf);
            encode_varint(metadata.len() as u64, buf);
            buf.put_slice(metadata);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        if tag != DYNAMIC_METADATA {
            return self.response.merge_field(tag, wire_type, buf, ctx);
        }
        // A message field seen twice merges; for a `Struct` (one repeated field)
        // that is the two encodings one after the other.
        let mut more = Vec::new();
        prost::encoding::bytes::merge(wire_type, &mut more, buf, ctx)?;
        self.metadata.get_or_insert_with(Vec::new).extend(more);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.response.encoded_len()
            + self.metadata.as_ref().map_or(0, |m| {
                key_len(DYNAMIC_METADATA) + encoded_len_varint(m.len() as u64) + m.len()
            })
    }

    fn clear(&mut self) {
        self.response.clear();
        self.metadata = None;
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::{DeniedHttpResponse, OkHttpResponse};
    use envoy_types::pb::google::protobuf::value::Kind;
    use envoy_types::pb::google::protobuf::{Struct, Value};
    use envoy_types::pb::google::rpc::Status;
    use prost::Message as _;

    use super::*;

    fn metadata(name: &str) -> Struct {
        Struct {
            fields: [(
                "sub".to_owned(),
                Value {
                    kind: Some(Kind::StringValue(name.to_owned())),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn encodes_as_the_check_response_with_that_metadata() {
        let response = CheckResponse {
            status: Some(Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        };
        let answer = CheckAnswer {
            response: response.clone(),
            metadata: Some(metadata("alice").encode_to_vec()),
        };
        let wire = answer.encode_to_vec();
        assert_eq!(wire.len(), answer.encoded_len());
        let expected = CheckResponse {
            dynamic_metadata: Some(metadata("alice")),
            ..response
        };
        // The same fields (in another order, which protobuf allows).
        assert_eq!(wire.len(), expected.encoded_len());
        assert_eq!(CheckResponse::decode(&wire[..]).unwrap(), expected);
        assert_eq!(CheckAnswer::decode(&wire[..]).unwrap(), answer);
    }

    #[test]
    fn without_metadata_is_the_plain_response() {
        let response = CheckResponse {
            status: Some(Status {
                code: 16,
                ..Status::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse::default())),
            dynamic_metadata: None,
        };
        let answer = CheckAnswer::from(response.clone());
        assert_eq!(answer.encode_to_vec(), response.encode_to_vec());
        assert_eq!(answer.encoded_len(), response.encoded_len());
        // An empty `Struct` is still there (field 4, length 0), as `Some(Struct {})` is.
        let empty = CheckAnswer {
            metadata: Some(Vec::new()),
            ..answer
        };
        let with_empty = CheckResponse {
            dynamic_metadata: Some(Struct::default()),
            ..response
        };
        assert_eq!(
            CheckResponse::decode(&empty.encode_to_vec()[..]).unwrap(),
            with_empty
        );
    }
}
