//! The Alipay OpenAPI v2 gateway protocol as the official SDKs speak it
//! (`shared/spec/openapi-gateway.md`): request decoding, charsets, the string-to-sign, RSA2/RSA
//! signatures, the response envelope and the code table. Pure functions, no I/O.

pub mod aes;
pub mod cert;
pub mod charset;
pub mod crypto;
pub mod envelope;
pub mod error;
pub mod form;
mod header;
pub mod method;
pub mod notification;
pub mod params;
pub mod request;
pub mod sign_content;
pub mod timestamp;
pub mod v3;

pub use charset::Charset;
pub use crypto::{Digest, KeyError, PrivateKey, PublicKey, SignType};
pub use error::{GatewayCode, ProtocolError, WireError};
pub use method::Method;
pub use params::Params;
