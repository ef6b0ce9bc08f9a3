//! The PDF file format, written front to back: numbered objects appended as they are ready,
//! then the cross-reference table (each object's byte offset) and the trailer. Bytes are handed
//! out as they accumulate ([`PdfWriter::take`]) so the caller can store them as it goes; what
//! the writer keeps is one byte offset per object, all the table at the end needs.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::ZlibEncoder;

/// A PDF object number.
pub type ObjectId = u32;

/// A PDF file being written.
pub struct PdfWriter {
    /// Bytes written but not yet taken.
    out: Vec<u8>,
    /// Bytes taken so far.
    taken: u64,
    /// The byte offset of each object (object `n` at index `n - 1`); 0 until it is written.
    offsets: Vec<u64>,
}

impl PdfWriter {
    /// A file with its header written.
    pub fn new() -> PdfWriter {
        PdfWriter {
            // The binary comment tells transfer tools that the file is binary.
            out: b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec(),
            taken: 0,
            offsets: Vec::new(),
        }
    }

    /// A fresh object number, to be written later with [`PdfWriter::object`] or a stream.
    pub fn reserve(&mut self) -> ObjectId {
        self.offsets.push(0);
        self.offsets.len() as ObjectId
    }

    /// Writes object `id`, a dictionary or other direct value.
    pub fn object(&mut self, id: ObjectId, body: &str) {
        self.start(id);
        self.out.extend_from_slice(body.as_bytes());
        self.out.extend_from_slice(b"\nendobj\n");
    }

    /// Writes object `id`, a stream of `data` compressed with Flate; `dict` holds the stream
    /// dictionary's entries other than `/Length` and `/Filter`.
    pub fn stream(&mut self, id: ObjectId, dict: &str, data: &[u8]) {
        let deflated = deflate(data, Compression::fast());
        self.deflated_stream(id, dict, &deflated);
    }

    /// Writes object `id`, a stream whose `deflated` bytes are compressed with Flate already.
    pub fn deflated_stream(&mut self, id: ObjectId, dict: &str, deflated: &[u8]) {
        self.start(id);
        let space = if dict.is_empty() { "" } else { " " };
        self.out.extend_from_slice(
            format!(
                "<< {dict}{space}/Filter /FlateDecode /Length {} >>\nstream\n",
                deflated.len()
            )
            .as_bytes(),
        );
        self.out.extend_from_slice(deflated);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    /// How many bytes wait to be taken.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// The bytes written since the last call: the next part of the file.
    pub fn take(&mut self) -> Vec<u8> {
        self.taken += self.out.len() as u64;
        std::mem::take(&mut self.out)
    }

    /// How many objects the file has so far (written or reserved).
    pub fn objects(&self) -> usize {
        self.offsets.len()
    }

    /// Ends the file: the cross-reference table and the trailer, naming the document catalog
    /// `root` and the information dictionary `info`. Returns the file's last bytes.
    pub fn finish(mut self, root: ObjectId, info: ObjectId) -> Vec<u8> {
        let xref = self.position();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len() + 1);
        for offset in &self.offsets {
            debug_assert!(*offset > 0, "every reserved object is written");
            match offset {
                0 => table.push_str("0000000000 00000 f \n"),
                _ => table.push_str(&format!("{offset:010} 00000 n \n")),
            }
        }
        table.push_str(&format!(
            "trailer\n<< /Size {} /Root {root} 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            self.offsets.len() + 1
        ));
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }

    /// The offset the next byte written will have in the file.
    fn position(&self) -> u64 {
        self.taken + self.out.len() as u64
    }

    fn start(&mut self, id: ObjectId) {
        let position = self.position();
        let slot = &mut self.offsets[id as usize - 1];
        debug_assert_eq!(*slot, 0, "object {id} written twice");
        *slot = position;
        self.out
            .extend_from_slice(format!("{id} 0 obj\n").as_bytes());
    }
}

/// `data` compressed with zlib's format, as the `FlateDecode` filter reads it.
pub fn deflate(data: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(data.len() / 4), level);
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .expect("compressing into memory cannot fail")
}

/// `text` as a PDF text string: UTF-16BE with its byte-order mark, in hexadecimal.
pub fn text_string(text: &str) -> String {
    let mut out = String::from("<FEFF");
    for unit in text.encode_utf16() {
        out.push_str(&format!("{unit:04X}"));
    }
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_point_at_their_objects_across_taken_bytes() {
        let mut pdf = PdfWriter::new();
        let (a, b) = (pdf.reserve(), pdf.reserve());
        let mut file = Vec::new();
        pdf.object(b, "<< /Type /Catalog >>");
        file.extend(pdf.take());
        assert_eq!(pdf.pending(), 0);
        pdf.stream(a, "", b"q Q");
        file.extend(pdf.take());
        file.extend(pdf.finish(b, a));
        // The header's binary comment is not UTF-8: offsets index the bytes.
        let text = String::from_utf8_lossy(&file[15..]);
        let xref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|tail| tail.lines().next())
            .and_then(|n| n.parse().ok())
            .expect("startxref");
        let table = String::from_utf8_lossy(&file[xref..]);
        assert!(table.starts_with("xref\n0 3\n"), "{table}");
        let entries: Vec<usize> = table
            .lines()
            .skip(3)
            .take(2)
            .map(|l| l[..10].parse().expect("an offset"))
            .collect();
        assert!(file[entries[0]..].starts_with(b"1 0 obj\n<< /Filter"));
        assert!(file[entries[1]..].starts_with(b"2 0 obj\n<< /Type /Catalog"));
    }

    #[test]
    fn text_strings_are_utf16_with_a_byte_order_mark() {
        assert_eq!(text_string("Aé😀"), "<FEFF004100E9D83DDE00>");
    }
}
