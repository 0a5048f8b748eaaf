//! What a deny log line says about the client certificate of the request (the
//! proxy listener's TLS peer): its subject and URI SANs (a SPIFFE ID), read from
//! the PEM only when a deny is logged.

use der::Decode as _;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
const SUBJECT_ALT_NAME: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.17");

/// `subject` and URI SANs (`CN=alice; uri=spiffe://test/alice`), or `unreadable`.
pub(crate) fn describe(pem_text: &str) -> String {
    let Ok(block) = pem::parse(pem_text) else {
        return "unreadable".to_owned();
    };
    let Ok(cert) = Certificate::from_der(block.contents()) else {
        return "unreadable".to_owned();
    };
    let tbs = &cert.tbs_certificate;
    let mut out = tbs.subject.to_string();
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != SUBJECT_ALT_NAME {
            continue;
        }
        if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
            for name in san.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = name {
                    out.push_str("; uri=");
                    out.push_str(uri.as_str());
                }
            }
        }
    }
    out
}
