//! Reading a request body within a limit, without holding more than the limit in memory.

use worker::Request;

use super::http::{ApiError, ApiResult};
use crate::error_code::ErrorCode;
pub use crate::event::limits::MAX_BODY_BYTES;

/// Most bytes of an oversized body read (and dropped) before the connection is cut: answering
/// while the client is still sending makes some proxies (wrangler's local one among them) fail the
/// request with a 500 instead of passing the 413 on.
pub const MAX_DRAIN_BYTES: usize = 128 * 1024 * 1024;

/// Reads a body up to [`MAX_BODY_BYTES`], as text. The body is read chunk by chunk into one
/// reused buffer (a BYOB reader, so reading allocates nothing per chunk) and never kept beyond the
/// limit: a body with no (or a false) `content-length` costs no more memory than the limit. Past
/// it the chunks are only counted and dropped, up to [`MAX_DRAIN_BYTES`], then the stream is
/// cancelled.
pub async fn body_text(req: &mut Request) -> ApiResult<String> {
    body_text_up_to(req, MAX_BODY_BYTES).await
}

/// [`body_text`] with another limit (the server-to-server routes take larger batches).
pub async fn body_text_up_to(req: &mut Request, max: usize) -> ApiResult<String> {
    if let Some(n) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > max {
            return Err(too_large(n, max));
        }
    }
    let Some(stream) = req.inner().body() else {
        return Ok(String::new());
    };
    let mut reader = BodyReader::new(&stream).map_err(body_error)?;
    let (mut bytes, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = reader.next().await.map_err(body_error)? {
        total += chunk.length() as usize;
        if total > MAX_DRAIN_BYTES {
            reader.cancel();
            break;
        }
        if total <= max {
            bytes.extend_from_slice(&chunk.to_vec());
        }
    }
    if total > max {
        return Err(ApiError::new(
            413,
            ErrorCode::BodyTooLarge,
            format!(
                "body is more than {max} bytes (the limit); {} read and dropped",
                total.min(MAX_DRAIN_BYTES + 1)
            ),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::new(400, ErrorCode::InvalidJson, "body is not UTF-8"))
}

fn body_error(e: wasm_bindgen::JsValue) -> ApiError {
    ApiError::new(
        400,
        ErrorCode::InvalidBody,
        format!("the body could not be read: {e:?}"),
    )
}

/// A request body's reader: BYOB into one 64 KiB buffer where the stream is a byte stream (request
/// bodies in workerd are), else the default reader. Called through JS so that a runtime without
/// BYOB falls back instead of trapping.
struct BodyReader {
    reader: js_sys::Object,
    read: js_sys::Function,
    /// BYOB: the buffer handed back by the last read, reused for the next one.
    buffer: Option<js_sys::ArrayBuffer>,
}

impl BodyReader {
    const CHUNK: u32 = 64 * 1024;

    fn new(
        stream: &worker::web_sys::ReadableStream,
    ) -> std::result::Result<Self, wasm_bindgen::JsValue> {
        use wasm_bindgen::JsCast as _;
        let get_reader: js_sys::Function =
            js_sys::Reflect::get(stream, &"getReader".into())?.dyn_into()?;
        let opts = js_sys::Object::new();
        js_sys::Reflect::set(&opts, &"mode".into(), &"byob".into())?;
        let (reader, buffer) = match get_reader.call1(stream, &opts) {
            Ok(r) => (r, Some(js_sys::ArrayBuffer::new(Self::CHUNK))),
            Err(_) => (get_reader.call0(stream)?, None),
        };
        let reader: js_sys::Object = reader.dyn_into()?;
        let read: js_sys::Function = js_sys::Reflect::get(&reader, &"read".into())?.dyn_into()?;
        Ok(BodyReader {
            reader,
            read,
            buffer,
        })
    }

    async fn next(
        &mut self,
    ) -> std::result::Result<Option<js_sys::Uint8Array>, wasm_bindgen::JsValue> {
        use wasm_bindgen::JsCast as _;
        let promise = match &self.buffer {
            Some(b) => self.read.call1(&self.reader, &js_sys::Uint8Array::new(b))?,
            None => self.read.call0(&self.reader)?,
        };
        let result =
            worker::wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await?;
        let done = js_sys::Reflect::get(&result, &"done".into())?
            .as_bool()
            .unwrap_or(true);
        if done {
            return Ok(None);
        }
        let view: js_sys::Uint8Array =
            js_sys::Reflect::get(&result, &"value".into())?.dyn_into()?;
        if self.buffer.is_some() {
            self.buffer = Some(view.buffer()); // the read transferred it: take it back
        }
        Ok(Some(view))
    }

    fn cancel(&self) {
        if let Ok(f) = js_sys::Reflect::get(&self.reader, &"cancel".into()) {
            if let Ok(f) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f) {
                let _ = f.call0(&self.reader);
            }
        }
    }
}

fn too_large(n: usize, max: usize) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::BodyTooLarge,
        format!("body is {n} bytes; the limit is {max}"),
    )
}
