//! The PDF export: a table of the items (title, status, tags, author, created, updated) on A4
//! landscape pages, the header row repeated on every page, long cells wrapped, "Page N of M"
//! at the foot. Text is set in DejaVu Sans, embedded whole, so Latin, Greek and Cyrillic text
//! is readable and extractable (its `ToUnicode` map is written by printpdf); scripts DejaVu
//! Sans does not cover (CJK) show as empty boxes but still extract as text.
//!
//! Memory: printpdf 0.12 builds the whole document before it serialises it (`PdfDocument::
//! save` takes every page's operations at once), so a PDF export holds its pages' operations
//! in memory until the end — the worker's peak was 503 MiB for 100,000 rows (about 5 KiB per
//! row; `BENCHMARKS.md`, `job-export`), against 47 MiB for the same rows as CSV; the job therefore refuses PDFs of
//! more than [`super::ExportSettings::pdf_max_rows`] items (the CSV export has no such bound).
//! The rows themselves are still read page by page, and the bytes written to PostgreSQL in
//! chunks.

use printpdf::{
    FontId, Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Pt, TextItem, TextMatrix,
};

use super::ExportItem;

/// DejaVu Sans (see `jobs/assets/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

const PAGE_WIDTH: f32 = 297.0;
const PAGE_HEIGHT: f32 = 210.0;
const MARGIN: f32 = 12.0;
/// Where the table stops, above the footer.
const BOTTOM: f32 = 16.0;
const FONT_SIZE: f32 = 8.0;
const TITLE_SIZE: f32 = 11.0;
/// Distance between two lines of a cell.
const LINE_HEIGHT: f32 = 3.6;
/// Space around a cell's text.
const PADDING: f32 = 1.2;
/// A cell longer than this many lines is cut (with an ellipsis).
const MAX_LINES: usize = 8;

/// The table's columns: heading and width (mm); they fill the page between the margins.
const COLUMNS: [(&str, f32); 6] = [
    ("Title", 100.0),
    ("Status", 20.0),
    ("Tags", 50.0),
    ("Author", 45.0),
    ("Created", 29.0),
    ("Updated", 29.0),
];

fn mm_to_pt(mm: f32) -> Pt {
    Pt::from(Mm(mm))
}

/// A PDF being built, row by row.
pub struct PdfTable {
    doc: PdfDocument,
    font: ParsedFont,
    font_id: FontId,
    title: String,
    pages: Vec<Vec<Op>>,
    /// The page being filled: its drawings and its text.
    drawing: Vec<Op>,
    text: Vec<Op>,
    /// The top of the next row (mm from the bottom of the page).
    y: f32,
    /// The font size the text section is at (0: none chosen yet).
    size: f32,
}

impl PdfTable {
    /// A document titled `title` (shown atop every page).
    pub fn new(title: &str) -> PdfTable {
        let mut warnings = Vec::new();
        let font = ParsedFont::from_bytes(FONT, 0, &mut warnings)
            .expect("the embedded DejaVu Sans parses");
        let mut doc = PdfDocument::new(title);
        let font_id = doc.add_font(&font);
        let mut table = PdfTable {
            doc,
            font,
            font_id,
            title: title.to_string(),
            pages: Vec::new(),
            drawing: Vec::new(),
            text: Vec::new(),
            y: 0.0,
            size: 0.0,
        };
        table.start_page();
        table
    }

    /// Adds `item`'s row, on a new page if it does not fit on this one.
    pub fn push(&mut self, item: &ExportItem) {
        let tags = item.tags.join(super::TAG_SEPARATOR);
        let (created, updated) = (
            super::timestamp(item.created_at),
            super::timestamp(item.updated_at),
        );
        let cells = [
            item.title.as_str(),
            item.status.as_str(),
            tags.as_str(),
            item.author.as_str(),
            created.as_str(),
            updated.as_str(),
        ];
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .zip(COLUMNS)
            .map(|(cell, (_, width))| self.wrap(cell, width - 2.0 * PADDING))
            .collect();
        let height = row_height(&wrapped);
        if self.y - height < BOTTOM {
            self.end_page();
            self.start_page();
        }
        self.row(&wrapped);
    }

    /// The finished document's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.end_page();
        let count = self.pages.len();
        let pages: Vec<PdfPage> = std::mem::take(&mut self.pages)
            .into_iter()
            .enumerate()
            .map(|(i, mut ops)| {
                let footer = format!("Page {} of {count}", i + 1);
                let x = (PAGE_WIDTH - self.width(&footer, FONT_SIZE)) / 2.0;
                self.size = 0.0;
                self.put(x, 8.0, FONT_SIZE, &footer);
                ops.push(Op::StartTextSection);
                ops.append(&mut self.text);
                ops.push(Op::EndTextSection);
                PdfPage::new(Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), ops)
            })
            .collect();
        let mut warnings = Vec::new();
        self.doc
            .with_pages(pages)
            .save(&PdfSaveOptions::default(), &mut warnings)
    }

    /// Begins a page: the document's title, then the table's header row.
    fn start_page(&mut self) {
        self.size = 0.0;
        let title = self.title.clone();
        self.put(MARGIN, PAGE_HEIGHT - MARGIN - 4.0, TITLE_SIZE, &title);
        self.y = PAGE_HEIGHT - MARGIN - 8.0;
        let header: Vec<Vec<String>> = COLUMNS
            .iter()
            .map(|(heading, _)| vec![heading.to_string()])
            .collect();
        self.drawing.push(Op::SetOutlineThickness { pt: Pt(0.8) });
        self.rule(self.y);
        self.row(&header);
        self.drawing.push(Op::SetOutlineThickness { pt: Pt(0.3) });
    }

    /// Closes the page being filled, with its page number (completed by [`PdfTable::finish`]).
    fn end_page(&mut self) {
        let mut ops = std::mem::take(&mut self.drawing);
        ops.push(Op::StartTextSection);
        ops.append(&mut self.text);
        ops.push(Op::EndTextSection);
        self.pages.push(ops);
    }

    /// Writes a row of wrapped cells at the current height and rules it off below.
    fn row(&mut self, cells: &[Vec<String>]) {
        let mut x = MARGIN;
        for (lines, (_, width)) in cells.iter().zip(COLUMNS) {
            for (n, line) in lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
                let baseline = self.y - PADDING - FONT_SIZE * 0.3528 - n as f32 * LINE_HEIGHT;
                self.put(x + PADDING, baseline, FONT_SIZE, line);
            }
            x += width;
        }
        self.y -= row_height(cells);
        self.rule(self.y);
    }

    /// A horizontal line across the table at height `y`.
    fn rule(&mut self, y: f32) {
        let point = |x: f32| LinePoint {
            p: Point::new(Mm(x), Mm(y)),
            bezier: false,
        };
        self.drawing.push(Op::DrawLine {
            line: Line {
                points: vec![point(MARGIN), point(PAGE_WIDTH - MARGIN)],
                is_closed: false,
            },
        });
    }

    /// Sets `text` at (`x`, `y`) mm in the page's text section, at `size` points.
    fn put(&mut self, x: f32, y: f32, size: f32, text: &str) {
        if self.size != size {
            self.size = size;
            self.text.push(Op::SetFont {
                font: PdfFontHandle::External(self.font_id.clone()),
                size: Pt(size),
            });
        }
        self.text.push(Op::SetTextMatrix {
            matrix: TextMatrix::Translate(mm_to_pt(x), mm_to_pt(y)),
        });
        self.text.push(Op::ShowText {
            items: vec![TextItem::Text(text.to_string())],
        });
    }

    /// The width of `text` at `size` points, in mm.
    fn width(&self, text: &str, size: f32) -> f32 {
        let units_per_em = f32::from(self.font.units_per_em.max(1));
        let units: u32 = text
            .chars()
            .map(|c| {
                self.font
                    .lookup_glyph_index(c as u32)
                    .and_then(|gid| self.font.get_glyph_width(gid))
                    .map_or(0, u32::from)
            })
            .sum();
        units as f32 / units_per_em * size * 25.4 / 72.0
    }

    /// `text` broken into lines no wider than `width` mm at the table's font size: at spaces
    /// where it can, anywhere in a word too long for a line; at most [`MAX_LINES`] lines.
    fn wrap(&self, text: &str, width: f32) -> Vec<String> {
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        for word in text.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if self.width(&candidate, FONT_SIZE) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: split it where it overflows.
            for c in word.chars() {
                line.push(c);
                if self.width(&line, FONT_SIZE) > width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        if lines.len() > MAX_LINES {
            lines.truncate(MAX_LINES);
            let mut last = lines.pop().unwrap_or_default();
            // Room for the ellipsis.
            while !last.is_empty() && self.width(&format!("{last}…"), FONT_SIZE) > width {
                last.pop();
            }
            lines.push(format!("{last}…"));
        }
        lines
    }
}

/// The height of a row of wrapped cells.
fn row_height(cells: &[Vec<String>]) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    lines as f32 * LINE_HEIGHT + 2.0 * PADDING
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize, title: &str) -> ExportItem {
        let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a time");
        ExportItem {
            id: uuid::Uuid::from_u128(n as u128),
            title: title.to_string(),
            status: "ACTIVE".into(),
            tags: vec!["alpha".into(), "beta".into()],
            author: "Ana".into(),
            created_at: at,
            updated_at: at,
            body: String::new(),
        }
    }

    /// The text `pdftotext` (Debian's poppler-utils) reads from `pdf`.
    fn text_of(pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("table.pdf");
        std::fs::write(&path, pdf).expect("written");
        let output = std::process::Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-layout"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) runs");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("utf-8")
    }

    #[test]
    fn rows_flow_over_pages_with_the_header_repeated_and_numbered() {
        let mut table = PdfTable::new("Acme: items");
        for n in 0..120 {
            table.push(&item(n, &format!("Row number {n}")));
        }
        let text = text_of(&table.finish());
        let pages = text.matches("Acme: items").count();
        assert!(pages > 1, "{text}");
        assert_eq!(
            text.matches("Updated").count(),
            pages,
            "a header row per page"
        );
        assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
        for n in 0..120 {
            assert!(text.contains(&format!("Row number {n}")), "row {n} missing");
        }
    }

    #[test]
    fn long_titles_wrap_and_non_latin_text_reads_back() {
        let long = "word ".repeat(40);
        let mut table = PdfTable::new("Ελληνικά");
        table.push(&item(1, long.trim()));
        table.push(&item(2, "Привет, Grüße, Καλημέρα"));
        table.push(&item(3, &"x".repeat(200)));
        let text = text_of(&table.finish());
        assert!(text.contains("Привет, Grüße, Καλημέρα"), "{text}");
        assert!(text.contains("Ελληνικά"), "{text}");
        assert_eq!(
            text.matches("word").count(),
            40,
            "every word of the wrapped title: {text}"
        );
        assert_eq!(text.matches('x').count(), 200, "{text}");
    }

    #[test]
    fn wrapping_keeps_lines_within_the_column() {
        let table = PdfTable::new("t");
        let lines = table.wrap(&"abc ".repeat(100), 30.0);
        assert!(lines.len() > 1 && lines.len() <= MAX_LINES);
        assert!(lines.iter().all(|l| table.width(l, FONT_SIZE) <= 30.0));
        assert!(lines.last().is_some_and(|l| l.ends_with('…')));
        assert_eq!(table.wrap("", 30.0), vec![String::new()]);
    }
}
