//! XML of the S3 API: a small writer for responses (escaping every text)
//! and the request bodies we parse (DeleteObjects,
//! CompleteMultipartUpload, CreateBucketConfiguration).

use serde::Deserialize;

use super::error::S3Error;

/// The S3 XML namespace.
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters cannot appear in XML 1.0: write them as
            // character references the way S3 does for keys.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Builds an XML document element by element.
pub struct Xml {
    out: String,
    stack: Vec<&'static str>,
}

impl Xml {
    /// A document whose root element is `root` (in the S3 namespace).
    pub fn new(root: &'static str) -> Self {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        out.push_str(&format!("<{root} xmlns=\"{NS}\">"));
        Self {
            out,
            stack: vec![root],
        }
    }

    /// Opens an element.
    pub fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.stack.push(name);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.stack.pop() {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
        self
    }

    /// `<name>text</name>`, the text escaped.
    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        self.out
            .push_str(&format!("<{name}>{}</{name}>", escape(text)));
        self
    }

    /// `<name>true</name>` or `<name>false</name>`.
    pub fn bool_elem(&mut self, name: &str, value: bool) -> &mut Self {
        self.elem(name, if value { "true" } else { "false" })
    }

    /// The document, every open element closed.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

/// The XML error body.
pub fn error_body(e: &S3Error, resource: &str, request_id: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>");
    out.push_str(&format!(
        "<Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId>",
        e.code(),
        escape(&e.to_string()),
        escape(resource),
        escape(request_id)
    ));
    out.push_str("</Error>");
    out
}

/// An S3 timestamp: `2006-02-03T16:45:09.000Z`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `<Delete>` of DeleteObjects.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    /// Report only errors.
    #[serde(default)]
    pub quiet: Option<bool>,
    /// The keys.
    #[serde(default, rename = "Object")]
    pub objects: Vec<DeleteObjectItem>,
}

/// One `<Object>` of a DeleteObjects request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteObjectItem {
    /// The key.
    pub key: String,
}

/// `<CompleteMultipartUpload>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteRequest {
    /// The parts, in order.
    #[serde(default, rename = "Part")]
    pub parts: Vec<CompletePart>,
}

/// One `<Part>` of CompleteMultipartUpload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletePart {
    /// Part number.
    pub part_number: u64,
    /// ETag returned by UploadPart (quotes optional).
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// `<CreateBucketConfiguration>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBucketConfiguration {
    /// The region asked for.
    #[serde(default)]
    pub location_constraint: Option<String>,
}

/// Parses a request body.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, S3Error> {
    let s = std::str::from_utf8(body).map_err(|_| S3Error::MalformedXml("not UTF-8".into()))?;
    quick_xml::de::from_str(s).map_err(|e| S3Error::MalformedXml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        let d: DeleteRequest = parse(
            br#"<?xml version="1.0" encoding="UTF-8"?>
            <Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
            <Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>x</VersionId></Object></Delete>"#,
        )
        .expect("parse");
        assert_eq!(d.quiet, Some(true));
        let keys: Vec<_> = d.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a&b", "c"]);
        let c: CompleteRequest = parse(
            br#"<CompleteMultipartUpload><Part><ETag>"aa"</ETag><PartNumber>1</PartNumber></Part>
            <Part><PartNumber>2</PartNumber><ETag>bb</ETag><ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>"#,
        )
        .expect("parse");
        assert_eq!(c.parts.len(), 2);
        assert_eq!(
            (c.parts[1].part_number, c.parts[1].etag.as_str()),
            (2, "bb")
        );
        assert!(matches!(
            parse::<CompleteRequest>(b"<CompleteMultipartUpload><Part>"),
            Err(S3Error::MalformedXml(_))
        ));
    }

    #[test]
    fn writes_and_escapes() {
        let mut x = Xml::new("R");
        x.open("A").elem("K", "a<b&'c'").close();
        assert_eq!(
            x.finish(),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><R xmlns=\"{NS}\"><A><K>a&lt;b&amp;&apos;c&apos;</K></A></R>")
        );
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
