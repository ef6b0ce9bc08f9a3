//! The PDF export: a table of the items (title, status, tags, author, created, updated) on A4
//! landscape pages, the header row repeated on every page, long cells wrapped, "Page N of M"
//! at the foot. Text is set in DejaVu Sans, embedded whole ([`font`]), so Latin, Greek and
//! Cyrillic text is readable, and all text extracts (a `ToUnicode` map); scripts DejaVu Sans
//! does not cover (CJK) show as empty boxes but still extract as text.
//!
//! Memory stays flat however many items there are: each page is written out ([`writer`]) as
//! soon as it is full, its content stream compressed, and the caller takes the bytes as they
//! accumulate ([`PdfTable::take`]) and stores them. What is kept to the end is what the end
//! needs: each object's byte offset and each page's object number (for the cross-reference
//! table and the page tree: a few bytes per page) and the characters used (for the font's
//! widths and `ToUnicode` map: bounded by the font, see [`font`]). The page count is not known
//! until the last page, so every footer says "Page N of " and then draws one form XObject,
//! written at the end, that shows the total.

mod font;
mod writer;

use font::Font;
use writer::{ObjectId, PdfWriter};

use super::ExportItem;

const PAGE_WIDTH: f32 = 297.0;
const PAGE_HEIGHT: f32 = 210.0;
const MARGIN: f32 = 12.0;
/// Where the table stops, above the footer.
const BOTTOM: f32 = 16.0;
/// The footer's baseline.
const FOOTER: f32 = 8.0;
const FONT_SIZE: f32 = 8.0;
const TITLE_SIZE: f32 = 11.0;
/// Distance between two lines of a cell.
const LINE_HEIGHT: f32 = 3.6;
/// Space around a cell's text.
const PADDING: f32 = 1.2;
/// A cell longer than this many lines is cut (with an ellipsis).
const MAX_LINES: usize = 8;
/// The page-count form XObject's name in the pages' resources.
const TOTAL: &str = "Total";

/// The table's columns: heading and width (mm); they fill the page between the margins.
const COLUMNS: [(&str, f32); 6] = [
    ("Title", 100.0),
    ("Status", 20.0),
    ("Tags", 50.0),
    ("Author", 45.0),
    ("Created", 29.0),
    ("Updated", 29.0),
];

/// Millimetres in points (PDF user space).
fn pt(mm: f32) -> f32 {
    mm * 72.0 / 25.4
}

/// The objects every page refers to, written at the end.
#[derive(Clone, Copy)]
struct Shared {
    catalog: ObjectId,
    pages: ObjectId,
    info: ObjectId,
    resources: ObjectId,
    font: ObjectId,
    total: ObjectId,
}

/// A PDF being written, row by row, page by page.
pub struct PdfTable {
    pdf: PdfWriter,
    font: Font,
    shared: Shared,
    title: String,
    /// The content stream of the page being filled.
    content: String,
    /// The object numbers of the pages written.
    page_ids: Vec<ObjectId>,
    /// The top of the next row (mm from the bottom of the page).
    y: f32,
}

/// What a [`PdfTable`] holds between rows (see [`PdfTable::retained`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    /// Pages written.
    pub pages: usize,
    /// Objects numbered (one byte offset each).
    pub objects: usize,
    /// CIDs the font gave out.
    pub cids: usize,
    /// Bytes of the page being filled (reserved).
    pub page_bytes: usize,
    /// Bytes written but not taken.
    pub pending: usize,
}

impl PdfTable {
    /// A document titled `title` (shown atop every page).
    pub fn new(title: &str) -> PdfTable {
        let mut pdf = PdfWriter::new();
        let shared = Shared {
            catalog: pdf.reserve(),
            pages: pdf.reserve(),
            info: pdf.reserve(),
            resources: pdf.reserve(),
            font: pdf.reserve(),
            total: pdf.reserve(),
        };
        let mut table = PdfTable {
            pdf,
            font: Font::new(),
            shared,
            title: title.to_string(),
            content: String::new(),
            page_ids: Vec::new(),
            y: 0.0,
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

    /// How many bytes of the file wait to be taken.
    pub fn pending(&self) -> usize {
        self.pdf.pending()
    }

    /// The file's bytes written since the last call (whole pages), to be stored in order.
    pub fn take(&mut self) -> Vec<u8> {
        self.pdf.take()
    }

    /// What the table holds now, to show it does not grow with the rows.
    pub fn retained(&self) -> Retained {
        Retained {
            pages: self.page_ids.len(),
            objects: self.pdf.objects(),
            cids: self.font.cids(),
            page_bytes: self.content.capacity(),
            pending: self.pdf.pending(),
        }
    }

    /// Ends the document: the last page, the page count, the font, the page tree. Returns the
    /// file's remaining bytes (after those [`PdfTable::take`] gave).
    pub fn finish(mut self) -> Vec<u8> {
        self.end_page();
        let shared = self.shared;
        // The page count every footer draws.
        let count = self.page_ids.len().to_string();
        let mut total = format!("BT /F1 {FONT_SIZE} Tf 0 0 Td ");
        self.font.encode(&count, &mut total);
        total.push_str(" Tj ET\n");
        let width = pt(self.width(&count, FONT_SIZE));
        self.pdf.stream(
            shared.total,
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 -{FONT_SIZE} {:.2} {FONT_SIZE}] \
                 /Resources << /Font << /F1 {} 0 R >> >>",
                width + 1.0,
                shared.font
            ),
            total.as_bytes(),
        );
        self.font.write(&mut self.pdf, shared.font);
        self.pdf.object(
            shared.resources,
            &format!(
                "<< /Font << /F1 {} 0 R >> /XObject << /{TOTAL} {} 0 R >> >>",
                shared.font, shared.total
            ),
        );
        let mut kids = String::new();
        for id in &self.page_ids {
            kids.push_str(&format!("{id} 0 R "));
        }
        self.pdf.object(
            shared.pages,
            &format!(
                "<< /Type /Pages /Kids [{kids}] /Count {} /MediaBox [0 0 {:.2} {:.2}] >>",
                self.page_ids.len(),
                pt(PAGE_WIDTH),
                pt(PAGE_HEIGHT)
            ),
        );
        self.pdf.object(
            shared.catalog,
            &format!("<< /Type /Catalog /Pages {} 0 R >>", shared.pages),
        );
        self.pdf.object(
            shared.info,
            &format!(
                "<< /Title {} /Producer (Chronicle) >>",
                writer::text_string(&self.title)
            ),
        );
        let (catalog, info) = (shared.catalog, shared.info);
        self.pdf.finish(catalog, info)
    }

    /// Begins a page: the document's title, then the table's header row.
    fn start_page(&mut self) {
        let title = self.title.clone();
        self.put(MARGIN, PAGE_HEIGHT - MARGIN - 4.0, TITLE_SIZE, &title);
        self.y = PAGE_HEIGHT - MARGIN - 8.0;
        let header: Vec<Vec<String>> = COLUMNS
            .iter()
            .map(|(heading, _)| vec![heading.to_string()])
            .collect();
        self.content.push_str("0.8 w\n");
        self.rule(self.y);
        self.row(&header);
        self.content.push_str("0.3 w\n");
    }

    /// Ends the page being filled with its footer, and writes it out.
    fn end_page(&mut self) {
        let number = self.page_ids.len() + 1;
        let label = format!("Page {number} of ");
        // Centred as if the total had as many digits as this page's number.
        let width = self.width(&format!("{label}{number}"), FONT_SIZE);
        let x = (PAGE_WIDTH - width) / 2.0;
        self.put(x, FOOTER, FONT_SIZE, &label);
        let after = x + self.width(&label, FONT_SIZE);
        self.content.push_str(&format!(
            "q 1 0 0 1 {:.2} {:.2} cm /{TOTAL} Do Q\n",
            pt(after),
            pt(FOOTER)
        ));
        let (contents, page) = (self.pdf.reserve(), self.pdf.reserve());
        self.pdf.stream(contents, "", self.content.as_bytes());
        self.content.clear();
        self.pdf.object(
            page,
            &format!(
                "<< /Type /Page /Parent {} 0 R /Resources {} 0 R /Contents {contents} 0 R >>",
                self.shared.pages, self.shared.resources
            ),
        );
        self.page_ids.push(page);
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
        self.content.push_str(&format!(
            "{:.2} {y:.2} m {:.2} {y:.2} l S\n",
            pt(MARGIN),
            pt(PAGE_WIDTH - MARGIN),
            y = pt(y)
        ));
    }

    /// Sets `text` at (`x`, `y`) mm, at `size` points.
    fn put(&mut self, x: f32, y: f32, size: f32, text: &str) {
        self.content
            .push_str(&format!("BT /F1 {size} Tf {:.2} {:.2} Td ", pt(x), pt(y)));
        self.font.encode(text, &mut self.content);
        self.content.push_str(" Tj ET\n");
    }

    /// The width of `text` at `size` points, in mm.
    fn width(&mut self, text: &str, size: f32) -> f32 {
        let units = self.font.units(text);
        self.mm(units, size)
    }

    /// `units` font units at `size` points, in mm.
    fn mm(&self, units: u32, size: f32) -> f32 {
        units as f32 / self.font.units_per_em() as f32 * size * 25.4 / 72.0
    }

    /// `text` broken into lines no wider than `width` mm at the table's font size: at spaces
    /// where it can, anywhere in a word too long for a line; at most [`MAX_LINES`] lines.
    /// Widths are added up in font units, each character measured once.
    fn wrap(&mut self, text: &str, width: f32) -> Vec<String> {
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let fits = |table: &PdfTable, units: u32| table.mm(units, FONT_SIZE) <= width;
        let space = self.font.advance(' ');
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        let mut line_units = 0;
        for word in text.split(' ') {
            let word_units = self.font.units(word);
            let candidate = match line.is_empty() {
                true => word_units,
                false => line_units + space + word_units,
            };
            if fits(self, candidate) {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
                line_units = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: split it where it overflows.
            line_units = 0;
            for c in word.chars() {
                let advance = self.font.advance(c);
                if !line.is_empty() && !fits(self, line_units + advance) {
                    lines.push(std::mem::take(&mut line));
                    line_units = 0;
                }
                line.push(c);
                line_units += advance;
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        if lines.len() > MAX_LINES {
            lines.truncate(MAX_LINES);
            let mut last = lines.pop().unwrap_or_default();
            // Room for the ellipsis.
            let ellipsis = self.font.advance('…');
            let mut units = self.font.units(&last);
            while let Some(c) = last.chars().next_back() {
                if fits(self, units + ellipsis) {
                    break;
                }
                units -= self.font.advance(c);
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

    /// The whole file of `table`, taking its bytes every `every` rows as the export job does.
    fn file_of(mut table: PdfTable, rows: impl Iterator<Item = ExportItem>) -> Vec<u8> {
        let mut file = Vec::new();
        for row in rows {
            table.push(&row);
            file.extend(table.take());
        }
        file.extend(table.finish());
        file
    }

    /// Runs a poppler-utils tool (Debian's package) on `pdf`; its standard output. Poppler
    /// reports what it had to repair on standard error: there must be nothing.
    fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("table.pdf");
        std::fs::write(&path, pdf).expect("written");
        let output = std::process::Command::new(tool)
            .args(args)
            .arg(&path)
            .args(if tool == "pdftotext" { &["-"][..] } else { &[] })
            .output()
            .unwrap_or_else(|e| panic!("{tool} (poppler-utils) runs: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "{tool}: {stderr}"
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// The text `pdftotext` reads from `pdf`, page by page.
    fn pages_of(pdf: &[u8]) -> Vec<String> {
        let text = poppler("pdftotext", &["-enc", "UTF-8", "-layout"], pdf);
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
        // pdftotext ends every page with a form feed.
        assert_eq!(pages.pop().as_deref(), Some(""));
        pages
    }

    #[test]
    fn rows_flow_over_pages_with_the_header_repeated_and_numbered() {
        let table = PdfTable::new("Acme: items");
        let pdf = file_of(table, (0..120).map(|n| item(n, &format!("Row number {n}"))));
        let info = poppler("pdfinfo", &[], &pdf);
        let pages = pages_of(&pdf);
        let count = pages.len();
        assert!(count > 1, "{pages:?}");
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name}: {info}"))
        };
        assert_eq!(field("Pages"), count.to_string());
        assert_eq!(field("Title"), "Acme: items");
        assert!(field("Page size").ends_with("(A4)"), "{info}");
        for (n, page) in pages.iter().enumerate() {
            assert!(page.contains("Acme: items"), "page {}: {page}", n + 1);
            assert_eq!(page.matches("Updated").count(), 1, "a header row: {page}");
            let footer = format!("Page {} of {count}", n + 1);
            assert!(page.contains(&footer), "{footer} missing: {page}");
        }
        let text = pages.concat();
        for n in 0..120 {
            assert!(
                text.contains(&format!("Row number {n} ")),
                "row {n} missing"
            );
        }
    }

    #[test]
    fn long_titles_wrap_and_non_latin_text_reads_back() {
        let long = "word ".repeat(40);
        let table = PdfTable::new("Ελληνικά");
        let rows = [
            item(1, long.trim()),
            item(2, "Привет, Grüße, Καλημέρα"),
            item(3, &"x".repeat(200)),
            // Not in DejaVu Sans: empty boxes on the page, the text still extracts.
            item(4, "中文 標題 😀"),
        ];
        let text = pages_of(&file_of(table, rows.into_iter())).concat();
        assert!(text.contains("Привет, Grüße, Καλημέρα"), "{text}");
        assert!(text.contains("Ελληνικά"), "{text}");
        assert!(text.contains("中文 標題 😀"), "{text}");
        assert_eq!(
            text.matches("word").count(),
            40,
            "every word of the wrapped title: {text}"
        );
        assert_eq!(text.matches('x').count(), 200, "{text}");
    }

    #[test]
    fn wrapping_keeps_lines_within_the_column() {
        let mut table = PdfTable::new("t");
        let lines = table.wrap(&"abc ".repeat(100), 30.0);
        assert!(lines.len() > 1 && lines.len() <= MAX_LINES);
        assert!(lines.iter().all(|l| table.width(l, FONT_SIZE) <= 30.0));
        assert!(lines.last().is_some_and(|l| l.ends_with('…')));
        assert_eq!(table.wrap("", 30.0), vec![String::new()]);
        // A word longer than the column is split where it overflows, nothing lost.
        let long = "m".repeat(60);
        let lines = table.wrap(&long, 30.0);
        assert!(lines.len() > 1 && lines.iter().all(|l| table.width(l, FONT_SIZE) <= 30.0));
        assert_eq!(lines.concat(), long);
    }

    /// Between rows the table holds one page's content and what the end needs; only the
    /// per-page bookkeeping (an object number and two offsets per page) grows with the rows.
    #[test]
    fn what_the_table_retains_does_not_grow_with_the_rows() {
        let mut table = PdfTable::new("Acme: items");
        let title = |n: usize| {
            format!(
                "Item {n}: Grüße, Привет, Καλημέρα {}",
                "word ".repeat(n % 30)
            )
        };
        let mut taken = 0;
        let mut push = |table: &mut PdfTable, rows: std::ops::Range<usize>| {
            for n in rows {
                table.push(&item(n, &title(n)));
                if table.pending() >= 64 * 1024 {
                    taken += table.take().len();
                }
            }
        };
        push(&mut table, 0..1_000);
        let early = table.retained();
        push(&mut table, 1_000..20_000);
        let late = table.retained();
        assert!(late.pages > 10 * early.pages, "{early:?} {late:?}");
        // One CID per character shown, however often: the same characters, no more CIDs.
        let shown: std::collections::HashSet<char> = (0..1_000)
            .map(title)
            .chain(COLUMNS.iter().map(|(heading, _)| heading.to_string()))
            .chain(["Acme: items", "ACTIVE", "alpha; beta", "Ana", "Page of"].map(String::from))
            .chain([super::super::timestamp(item(0, "").created_at)])
            .flat_map(|text| text.chars().collect::<Vec<_>>())
            .collect();
        assert_eq!(early.cids, shown.len());
        assert_eq!(late.cids, early.cids);
        // Two objects (content and page) per page beside a fixed few.
        assert_eq!(
            late.objects - 2 * late.pages,
            early.objects - 2 * early.pages
        );
        // One page's content at most, and the bytes handed out as they came.
        assert!(late.page_bytes <= 64 * 1024, "{late:?}");
        assert!(late.pending < 64 * 1024 + late.page_bytes, "{late:?}");
        assert!(taken > 20 * 64 * 1024);
    }
}
