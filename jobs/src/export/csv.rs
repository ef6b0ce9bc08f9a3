//! CSV as RFC 4180: a header row, records ended by CRLF, a field quoted when it holds a comma,
//! a double quote, CR or LF (its quotes doubled). UTF-8, no byte-order mark.
//!
//! Cells a spreadsheet would take for a formula — beginning with `=`, `+`, `-`, `@`, a tab or
//! a carriage return — are neutralised by a leading single quote, as OWASP advises against
//! CSV injection: opened in a spreadsheet, a title such as `=HYPERLINK(...)` stays text.

use std::borrow::Cow;

use super::ExportItem;

/// The header row's columns, in order.
pub const COLUMNS: [&str; 8] = [
    "id", "title", "status", "tags", "author", "created", "updated", "body",
];

/// Appends the header row to `out`.
pub fn header(out: &mut Vec<u8>) {
    record(out, &COLUMNS);
}

/// Appends `item`'s record to `out`.
pub fn item(out: &mut Vec<u8>, item: &ExportItem) {
    let id = item.id.to_string();
    let tags = item.tags.join(super::TAG_SEPARATOR);
    let (created, updated) = (
        super::timestamp(item.created_at),
        super::timestamp(item.updated_at),
    );
    record(
        out,
        &[
            &id,
            &item.title,
            &item.status,
            &tags,
            &item.author,
            &created,
            &updated,
            &item.body,
        ],
    );
}

/// Appends one record (fields neutralised, then quoted as needed) and its CRLF.
fn record(out: &mut Vec<u8>, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, &neutralised(field));
    }
    out.extend_from_slice(b"\r\n");
}

/// `cell`, with a leading `'` if a spreadsheet would read it as a formula.
pub fn neutralised(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn write_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        for part in field.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[&str]) -> String {
        let mut out = Vec::new();
        record(&mut out, fields);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn fields_with_commas_quotes_or_line_breaks_are_quoted() {
        assert_eq!(line(&["plain", "a,b"]), "plain,\"a,b\"\r\n");
        assert_eq!(line(&["say \"hi\""]), "\"say \"\"hi\"\"\"\r\n");
        assert_eq!(
            line(&["two\nlines", "cr\rhere"]),
            "\"two\nlines\",\"cr\rhere\"\r\n"
        );
        assert_eq!(line(&["", "x"]), ",x\r\n");
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralised(cell), format!("'{cell}"));
        }
        assert_eq!(neutralised("a=b"), "a=b");
        assert_eq!(neutralised(""), "");
        // Neutralised first, then quoted: the quote goes inside the field.
        assert_eq!(line(&["=A1,B1"]), "\"'=A1,B1\"\r\n");
    }
}
