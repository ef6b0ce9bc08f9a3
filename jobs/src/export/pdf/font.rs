//! DejaVu Sans (see `jobs/assets/LICENSE-DejaVu.txt`) as the PDF's one font: a Type 0 font
//! with `Identity-H` encoding over a `CIDFontType2` (TrueType outlines), the font file embedded
//! whole. Text is shown as 2-byte CIDs; glyph lookup and advance widths come from the font's
//! own tables (read with `ttf-parser`).
//!
//! A character's CID is its glyph number when that CID is still free, so a page shows glyph
//! numbers and `CIDToGIDMap` is mostly the identity. A character that shares its glyph with one
//! met earlier (the font maps several code points to one glyph) or that DejaVu Sans lacks gets
//! a spare CID above the font's glyphs; the spare CIDs of missing characters map to glyph 0
//! (`.notdef`, an empty box). Every CID's character is in the `ToUnicode` map, so all text,
//! the missing characters included, extracts as written.
//!
//! What the font remembers is bounded by the CID space (65,536), not by the text shown: once
//! the spare CIDs run out, a further new character takes its glyph's CID (or `.notdef`'s) and
//! extracts as the character that CID was first given to.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use flate2::Compression;
use ttf_parser::{Face, GlyphId};

use super::writer::{self, ObjectId, PdfWriter};

/// DejaVu Sans, the file embedded in the PDF.
const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
/// The font's name in the PDF.
const NAME: &str = "DejaVuSans";
/// CIDs are 2 bytes (`Identity-H`).
const CIDS: u32 = 1 << 16;

static FACE: LazyLock<Face<'static>> =
    LazyLock::new(|| Face::parse(FONT, 0).expect("the embedded DejaVu Sans parses"));

/// The font file compressed for embedding: the same for every PDF, so compressed once.
static DEFLATED: LazyLock<Vec<u8>> =
    LazyLock::new(|| writer::deflate(FONT, Compression::default()));

/// A character as shown: its CID and its advance width in font units.
#[derive(Debug, Clone, Copy)]
struct Glyph {
    cid: u16,
    advance: u16,
}

/// What a CID shows: a glyph of the font and the character it stands for.
#[derive(Debug, Clone, Copy)]
struct Used {
    glyph: GlyphId,
    text: char,
}

/// The font as used by one document: the characters shown so far and their CIDs.
pub struct Font {
    face: &'static Face<'static>,
    /// Each character met so far (while CIDs last).
    glyphs: HashMap<char, Glyph>,
    /// Each CID given out, in order.
    used: BTreeMap<u16, Used>,
    /// The next spare CID (above the font's glyphs).
    spare: u32,
}

impl Font {
    pub fn new() -> Font {
        let face: &'static Face<'static> = &FACE;
        Font {
            face,
            glyphs: HashMap::new(),
            used: BTreeMap::new(),
            spare: u32::from(face.number_of_glyphs()),
        }
    }

    /// Font units per em: advance widths are in these.
    pub fn units_per_em(&self) -> u32 {
        u32::from(self.face.units_per_em().max(1))
    }

    /// The advance width of `c` in font units.
    pub fn advance(&mut self, c: char) -> u32 {
        u32::from(self.glyph(c).advance)
    }

    /// The width of `text` in font units.
    pub fn units(&mut self, text: &str) -> u32 {
        text.chars().map(|c| self.advance(c)).sum()
    }

    /// `text` as a hexadecimal string of its CIDs, for a content stream's `Tj`.
    pub fn encode(&mut self, text: &str, out: &mut String) {
        out.push('<');
        for c in text.chars() {
            out.push_str(&format!("{:04X}", self.glyph(c).cid));
        }
        out.push('>');
    }

    /// How many CIDs the document uses so far.
    pub fn cids(&self) -> usize {
        self.used.len()
    }

    /// Writes the font as object `font` (the Type 0 font pages name) and the objects it needs.
    pub fn write(&self, pdf: &mut PdfWriter, font: ObjectId) {
        let (cid_font, descriptor, file, to_unicode, cid_to_gid) = (
            pdf.reserve(),
            pdf.reserve(),
            pdf.reserve(),
            pdf.reserve(),
            pdf.reserve(),
        );
        pdf.object(
            font,
            &format!(
                "<< /Type /Font /Subtype /Type0 /BaseFont /{NAME} /Encoding /Identity-H \
                 /DescendantFonts [{cid_font} 0 R] /ToUnicode {to_unicode} 0 R >>"
            ),
        );
        let mut widths = String::new();
        for (cid, used) in &self.used {
            let advance = self.face.glyph_hor_advance(used.glyph).unwrap_or(0);
            widths.push_str(&format!(
                "{cid} [{}] ",
                self.thousandths(i32::from(advance))
            ));
        }
        pdf.object(
            cid_font,
            &format!(
                "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{NAME} \
                 /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> \
                 /FontDescriptor {descriptor} 0 R /DW 0 /W [{widths}] \
                 /CIDToGIDMap {cid_to_gid} 0 R >>"
            ),
        );
        let face = self.face;
        let bbox = face.global_bounding_box();
        let em = |v: i16| self.thousandths(i32::from(v));
        pdf.object(
            descriptor,
            &format!(
                "<< /Type /FontDescriptor /FontName /{NAME} /Flags 32 \
                 /FontBBox [{} {} {} {}] /ItalicAngle {} /Ascent {} /Descent {} \
                 /CapHeight {} /StemV 80 /FontFile2 {file} 0 R >>",
                em(bbox.x_min),
                em(bbox.y_min),
                em(bbox.x_max),
                em(bbox.y_max),
                face.italic_angle(),
                em(face.ascender()),
                em(face.descender()),
                em(face.capital_height().unwrap_or(face.ascender())),
            ),
        );
        pdf.deflated_stream(file, &format!("/Length1 {}", FONT.len()), &DEFLATED);
        pdf.stream(to_unicode, "", self.to_unicode().as_bytes());
        pdf.stream(cid_to_gid, "", &self.cid_to_gid());
    }

    /// `c` as shown, its CID given out on first use.
    fn glyph(&mut self, c: char) -> Glyph {
        if let Some(glyph) = self.glyphs.get(&c) {
            return *glyph;
        }
        let found = self.face.glyph_index(c);
        let glyph = found.unwrap_or(GlyphId(0));
        let advance = self.face.glyph_hor_advance(glyph).unwrap_or(0);
        let cid = match found {
            Some(g) if g.0 != 0 && !self.used.contains_key(&g.0) => g.0,
            _ if self.spare < CIDS => {
                self.spare += 1;
                (self.spare - 1) as u16
            }
            // Out of CIDs: this character shares one and is not remembered.
            _ => {
                self.used.entry(glyph.0).or_insert(Used { glyph, text: c });
                return Glyph {
                    cid: glyph.0,
                    advance,
                };
            }
        };
        self.used.insert(cid, Used { glyph, text: c });
        let shown = Glyph { cid, advance };
        self.glyphs.insert(c, shown);
        shown
    }

    /// `units` font units in thousandths of an em (PDF glyph space).
    fn thousandths(&self, units: i32) -> i32 {
        let per_em = self.units_per_em() as i32;
        (units * 1000 + per_em / 2).div_euclid(per_em)
    }

    /// The `ToUnicode` CMap: each CID's character.
    fn to_unicode(&self) -> String {
        let mut cmap = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let used: Vec<(&u16, &Used)> = self.used.iter().collect();
        // At most 100 entries per block.
        for block in used.chunks(100) {
            cmap.push_str(&format!("{} beginbfchar\n", block.len()));
            for (cid, used) in block {
                cmap.push_str(&format!("<{cid:04X}> <"));
                for unit in used.text.encode_utf16(&mut [0; 2]) {
                    cmap.push_str(&format!("{unit:04X}"));
                }
                cmap.push_str(">\n");
            }
            cmap.push_str("endbfchar\n");
        }
        cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        cmap
    }

    /// The `CIDToGIDMap` stream: 2 bytes per CID up to the highest used, its glyph number.
    fn cid_to_gid(&self) -> Vec<u8> {
        let last = self
            .used
            .keys()
            .next_back()
            .map_or(0, |cid| usize::from(*cid));
        let mut map = vec![0; 2 * (last + 1)];
        for (cid, used) in &self.used {
            let at = 2 * usize::from(*cid);
            map[at..at + 2].copy_from_slice(&used.glyph.0.to_be_bytes());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_get_their_glyph_as_cid_and_missing_ones_a_spare_one() {
        let mut font = Font::new();
        let a = FACE.glyph_index('a').expect("DejaVu Sans has a").0;
        let mut hex = String::new();
        font.encode("aa", &mut hex);
        assert_eq!(hex, format!("<{a:04X}{a:04X}>"));
        // DejaVu Sans has no CJK: two such characters get two CIDs, both showing .notdef.
        assert!(FACE.glyph_index('中').is_none());
        let (zhong, wen) = (font.glyph('中'), font.glyph('文'));
        assert_ne!(zhong.cid, wen.cid);
        assert!(u32::from(zhong.cid) >= u32::from(FACE.number_of_glyphs()));
        let map = font.cid_to_gid();
        let gid = |cid: u16| u16::from_be_bytes([map[2 * cid as usize], map[2 * cid as usize + 1]]);
        assert_eq!((gid(a), gid(zhong.cid), gid(wen.cid)), (a, 0, 0));
        let cmap = font.to_unicode();
        assert!(
            cmap.contains(&format!("<{:04X}> <4E2D>", zhong.cid)),
            "{cmap}"
        );
        assert!(cmap.contains(&format!("<{a:04X}> <0061>")), "{cmap}");
        assert_eq!(font.cids(), 3);
    }

    #[test]
    fn astral_characters_map_to_surrogate_pairs() {
        let mut font = Font::new();
        let cid = font.glyph('😀').cid;
        assert!(
            font.to_unicode()
                .contains(&format!("<{cid:04X}> <D83DDE00>"))
        );
    }
}
