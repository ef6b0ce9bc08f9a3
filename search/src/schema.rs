//! The index schema: which fields exist, how their text is analysed, and the conversion of
//! [`ItemDoc`]s to and from tantivy documents.
//!
//! | field | kind | used for |
//! |---|---|---|
//! | `id` | raw keyword, stored | upsert/delete by id, [`get`](crate::SearchIndex::get) |
//! | `id_hi`, `id_lo` | `u64` fast | the id as a tie-breaker when sorting |
//! | `workspace_id` | raw keyword, stored | the mandatory tenant filter |
//! | `title`, `body` | words (frequencies, norms), stored | matching, BM25, highlights |
//! | `tag_words` | words (frequencies, norms) | matching tags word by word |
//! | `tag` | raw keyword, stored | tag filter |
//! | `tag_set` | string, fast | tag facets: the item's tags, sorted, joined by [`TAG_SEPARATOR`] |
//! | `status` | raw keyword, fast, stored | status filter and facets (read in the collector) |
//! | `author_id` | raw keyword, stored | author filter |
//! | `created_at`, `updated_at` | nanosecond date, fast, stored | date filters and sorting |
//!
//! Words are produced by one analyzer, used both when indexing and when reading the user's
//! text: split on anything that is not a letter or digit, drop tokens over
//! [`MAX_TOKEN_BYTES`], lowercase, fold to ASCII (`Café` → `cafe`). Its name carries a version:
//! changing what it does must change [`ANALYZER`], so that an index built by the old analyzer
//! no longer has the expected schema and is rebuilt on open.

use chrono::{DateTime, Utc};
use tantivy::TantivyDocument;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{DateTime as IndexDateTime, Term};
use uuid::Uuid;

use crate::{Error, ItemDoc};

/// The name the word analyzer is registered under (see the module documentation).
pub(crate) const ANALYZER: &str = "chronicle_words_v1";

/// Longer tokens (base64 blobs, URLs without separators...) are not indexed.
pub(crate) const MAX_TOKEN_BYTES: usize = 64;

/// Names of the fast fields the collector reads.
pub(crate) const ID_HI: &str = "id_hi";
pub(crate) const ID_LO: &str = "id_lo";
pub(crate) const TAG_SET: &str = "tag_set";

/// Separates the tags of an item in its `tag_set`, a single value per document that is much
/// cheaper to read than one value per tag. Tags are not expected to contain it.
pub(crate) const TAG_SEPARATOR: char = '\u{1f}';
pub(crate) const STATUS: &str = "status";
pub(crate) const CREATED_AT: &str = "created_at";
pub(crate) const UPDATED_AT: &str = "updated_at";

/// The analyzer turning text into words, at index time and at query time.
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The schema every index this crate opens must have.
pub(crate) fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("id", keyword().set_stored());
    builder.add_u64_field(ID_HI, NumericOptions::default().set_fast());
    builder.add_u64_field(ID_LO, NumericOptions::default().set_fast());
    builder.add_text_field("workspace_id", keyword().set_stored());
    builder.add_text_field("title", words().set_stored());
    builder.add_text_field("body", words().set_stored());
    builder.add_text_field("tag_words", words());
    builder.add_text_field("tag", keyword().set_stored());
    builder.add_text_field(TAG_SET, TextOptions::default().set_fast("raw"));
    builder.add_text_field(STATUS, keyword().set_stored().set_fast("raw"));
    builder.add_text_field("author_id", keyword().set_stored());
    builder.add_date_field(CREATED_AT, instant());
    builder.add_date_field(UPDATED_AT, instant());
    builder.build()
}

fn keyword() -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_fieldnorms(false)
        .set_index_option(IndexRecordOption::Basic);
    TextOptions::default().set_indexing_options(indexing)
}

fn words() -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    TextOptions::default().set_indexing_options(indexing)
}

fn instant() -> DateOptions {
    DateOptions::default()
        .set_fast()
        .set_stored()
        .set_precision(DateTimePrecision::Nanoseconds)
}

/// The schema's field handles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) id_hi: Field,
    pub(crate) id_lo: Field,
    pub(crate) workspace_id: Field,
    pub(crate) title: Field,
    pub(crate) body: Field,
    pub(crate) tag_words: Field,
    pub(crate) tag: Field,
    pub(crate) tag_set: Field,
    pub(crate) status: Field,
    pub(crate) author_id: Field,
    pub(crate) created_at: Field,
    pub(crate) updated_at: Field,
}

impl Fields {
    pub(crate) fn new(schema: &Schema) -> Result<Fields, Error> {
        Ok(Fields {
            id: schema.get_field("id")?,
            id_hi: schema.get_field(ID_HI)?,
            id_lo: schema.get_field(ID_LO)?,
            workspace_id: schema.get_field("workspace_id")?,
            title: schema.get_field("title")?,
            body: schema.get_field("body")?,
            tag_words: schema.get_field("tag_words")?,
            tag: schema.get_field("tag")?,
            tag_set: schema.get_field(TAG_SET)?,
            status: schema.get_field(STATUS)?,
            author_id: schema.get_field("author_id")?,
            created_at: schema.get_field(CREATED_AT)?,
            updated_at: schema.get_field(UPDATED_AT)?,
        })
    }

    /// The term naming one item, for upserts, deletes and [`get`](crate::SearchIndex::get).
    pub(crate) fn id_term(&self, id: Uuid) -> Term {
        Term::from_field_text(self.id, &id.to_string())
    }

    /// The tantivy document for an item; fails if a timestamp is outside the representable range.
    pub(crate) fn document(&self, item: &ItemDoc) -> Result<TantivyDocument, Error> {
        let mut doc = TantivyDocument::new();
        let (id_hi, id_lo) = split_id(item.id);
        doc.add_text(self.id, item.id.to_string());
        doc.add_u64(self.id_hi, id_hi);
        doc.add_u64(self.id_lo, id_lo);
        doc.add_text(self.workspace_id, item.workspace_id.to_string());
        doc.add_text(self.title, &item.title);
        doc.add_text(self.body, &item.body);
        let mut tags: Vec<&str> = Vec::with_capacity(item.tags.len());
        for tag in &item.tags {
            if !tags.contains(&tag.as_str()) {
                tags.push(tag);
                doc.add_text(self.tag, tag);
                doc.add_text(self.tag_words, tag);
            }
        }
        tags.sort_unstable();
        doc.add_text(self.tag_set, tags.join(&TAG_SEPARATOR.to_string()));
        doc.add_text(self.status, &item.status);
        doc.add_text(self.author_id, item.author_id.to_string());
        doc.add_date(self.created_at, index_date(item.created_at)?);
        doc.add_date(self.updated_at, index_date(item.updated_at)?);
        Ok(doc)
    }

    /// The item a stored document holds.
    pub(crate) fn item(&self, doc: &TantivyDocument) -> Result<ItemDoc, Error> {
        Ok(ItemDoc {
            id: uuid(doc, self.id, "id")?,
            workspace_id: uuid(doc, self.workspace_id, "workspace_id")?,
            title: text(doc, self.title, "title")?.to_owned(),
            body: text(doc, self.body, "body")?.to_owned(),
            tags: doc
                .get_all(self.tag)
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect(),
            status: text(doc, self.status, "status")?.to_owned(),
            author_id: uuid(doc, self.author_id, "author_id")?,
            created_at: date(doc, self.created_at, "created_at")?,
            updated_at: date(doc, self.updated_at, "updated_at")?,
        })
    }
}

/// A uuid as the two halves stored in the `id_hi`/`id_lo` fast fields.
fn split_id(id: Uuid) -> (u64, u64) {
    let id = id.as_u128();
    ((id >> 64) as u64, id as u64)
}

/// The uuid a pair of `id_hi`/`id_lo` values stands for.
pub(crate) fn join_id(hi: u64, lo: u64) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

/// Nanoseconds since the epoch, or `None` outside 1677-09-21..2262-04-11.
pub(crate) fn nanos(at: DateTime<Utc>) -> Option<i64> {
    at.timestamp_nanos_opt()
}

fn index_date(at: DateTime<Utc>) -> Result<IndexDateTime, Error> {
    let nanos = nanos(at).ok_or_else(|| {
        Error::InvalidInput(format!("timestamp {at} is outside the years 1678 to 2261"))
    })?;
    Ok(IndexDateTime::from_timestamp_nanos(nanos))
}

pub(crate) fn text<'a>(
    doc: &'a TantivyDocument,
    field: Field,
    name: &str,
) -> Result<&'a str, Error> {
    doc.get_first(field)
        .and_then(|value| value.as_str())
        .ok_or_else(|| Error::MalformedDocument(format!("no `{name}`")))
}

fn uuid(doc: &TantivyDocument, field: Field, name: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(text(doc, field, name)?)
        .map_err(|_| Error::MalformedDocument(format!("`{name}` is not a uuid")))
}

fn date(doc: &TantivyDocument, field: Field, name: &str) -> Result<DateTime<Utc>, Error> {
    let stored = doc
        .get_first(field)
        .and_then(|value| value.as_datetime())
        .ok_or_else(|| Error::MalformedDocument(format!("no `{name}`")))?;
    Ok(DateTime::from_timestamp_nanos(
        stored.into_timestamp_nanos(),
    ))
}
