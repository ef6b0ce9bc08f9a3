use super::*;
use crate::fixtures::{because, refused};

fn strings(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn email_is_trimmed_and_keeps_case_but_normalises_lowercase() {
    let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
    assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
    assert_eq!(email.normalized(), "ada.lovelace@example.com");
    assert!(email.matches(&Email::parse("ada.lovelace@example.com").expect("valid")));
}

#[test]
fn email_rejects_bad_syntax() {
    for bad in [
        "",
        "   ",
        "plain",
        "@example.com",
        "ada@",
        "ada@example",
        "ada@@example.com",
        "a@b@example.com",
        "ada lovelace@example.com",
        "ada@.example.com",
        "ada@example.com.",
        "ada@example..com",
        "ada@-example.com",
        "ada\u{0}@example.com",
    ] {
        let expected = if bad.trim().is_empty() {
            because("email", "must not be blank")
        } else {
            because("email", "is not a valid email address")
        };
        assert_eq!(refused(Email::parse(bad)), expected, "{bad:?}");
    }
}

#[test]
fn email_length_limit_is_254() {
    let local = "a".repeat(64);
    let domain_254 = format!("{}.com", "b".repeat(254 - 64 - 1 - 4));
    let ok = format!("{local}@{domain_254}");
    assert_eq!(ok.chars().count(), 254);
    assert!(Email::parse(&ok).is_ok());
    let too_long = format!("{local}@b{domain_254}");
    assert_eq!(
        refused(Email::parse(&too_long)),
        because("email", "must be at most 254 characters")
    );
    let long_local = format!("{}@example.com", "a".repeat(65));
    assert_eq!(
        refused(Email::parse(&long_local)),
        because("email", "is not a valid email address")
    );
}

#[test]
fn display_and_workspace_names_are_1_to_100_chars_after_trim() {
    assert_eq!(DisplayName::parse("  Ada ").expect("valid").as_str(), "Ada");
    assert!(DisplayName::parse(&"x".repeat(100)).is_ok());
    assert!(DisplayName::parse(&format!("  {}  ", "x".repeat(100))).is_ok());
    assert_eq!(
        refused(DisplayName::parse(&"x".repeat(101))),
        because("display_name", "must be at most 100 characters")
    );
    assert_eq!(
        refused(DisplayName::parse("   ")),
        because("display_name", "must not be blank")
    );
    assert_eq!(
        refused(DisplayName::parse("a\nb")),
        because("display_name", "must not contain control characters")
    );
    assert!(WorkspaceName::parse(&"é".repeat(100)).is_ok());
    assert_eq!(
        refused(WorkspaceName::parse(&"é".repeat(101))),
        because("name", "must be at most 100 characters")
    );
    assert_eq!(
        refused(WorkspaceName::parse("")),
        because("name", "must not be blank")
    );
}

#[test]
fn item_title_boundaries_200_and_201() {
    assert!(ItemTitle::parse(&"t".repeat(200)).is_ok());
    assert!(
        ItemTitle::parse(&"ü".repeat(200)).is_ok(),
        "counts characters, not bytes"
    );
    assert_eq!(
        refused(ItemTitle::parse(&"t".repeat(201))),
        because("title", "must be at most 200 characters")
    );
    assert_eq!(
        refused(ItemTitle::parse(" \t ")),
        because("title", "must not be blank")
    );
    assert_eq!(
        ItemTitle::parse("  Hello  ").expect("valid").as_str(),
        "Hello"
    );
}

#[test]
fn item_body_boundaries_20000_and_20001() {
    assert!(ItemBody::parse("").is_ok());
    assert!(ItemBody::parse(&"b".repeat(20_000)).is_ok());
    assert!(ItemBody::parse(&"ß".repeat(20_000)).is_ok());
    assert_eq!(
        refused(ItemBody::parse(&"b".repeat(20_001))),
        because("body", "must be at most 20000 characters")
    );
    assert!(ItemBody::parse("line one\nline two\ttabbed").is_ok());
    assert_eq!(
        refused(ItemBody::parse("nul \u{0} inside")),
        because("body", "must not contain NUL characters")
    );
}

#[test]
fn tag_boundaries_40_and_41() {
    assert!(Tag::parse(&"g".repeat(40)).is_ok());
    assert_eq!(
        refused(Tag::parse(&"g".repeat(41))),
        because("tag", "must be at most 40 characters")
    );
    assert_eq!(refused(Tag::parse("")), because("tag", "must not be blank"));
    assert_eq!(
        refused(Tag::parse("a\u{7}b")),
        because("tag", "must not contain control characters")
    );
    assert_eq!(Tag::parse(" rust ").expect("valid").as_str(), "rust");
}

#[test]
fn tags_boundaries_20_and_21() {
    assert_eq!(Tags::parse(strings(20, "t")).expect("valid").len(), 20);
    assert_eq!(
        refused(Tags::parse(strings(21, "t"))),
        because("tags", "at most 20 tags are allowed, not 21")
    );
}

#[test]
fn tags_are_deduplicated_keeping_first_order() {
    let tags = Tags::parse(vec![
        "b".into(),
        "a".into(),
        " b ".into(),
        "c".into(),
        "a".into(),
    ])
    .expect("valid");
    let names: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    assert_eq!(names, ["b", "a", "c"]);
}

#[test]
fn an_oversized_tag_list_is_refused_by_its_length_before_any_tag_is_read() {
    // 80,000 tags whose first is invalid: the count is refused, so no tag was looked at (a
    // quadratic de-duplication of such a list kept a server busy for seconds).
    let mut flood = vec![String::new()];
    flood.extend((0..80_000).map(|n| format!("t{n}")));
    let err = Tags::parse(flood).expect_err("too many");
    assert_eq!(err.field, "tags");
    assert_eq!(err.message, "at most 20 tags are allowed, not 80001");
    // Duplicates count: 21 tags of which 20 are distinct are still too many given.
    let mut many = strings(20, "t");
    many.push("t0".into());
    assert_eq!(
        refused(Tags::parse(many)),
        because("tags", "at most 20 tags are allowed, not 21")
    );
}

#[test]
fn tags_report_which_tag_is_invalid() {
    assert_eq!(
        refused(Tags::parse(vec!["ok".into(), "x".repeat(41)])),
        because("tags", "tag 2: must be at most 40 characters")
    );
    assert_eq!(
        refused(Tags::parse(vec!["".into()])),
        because("tags", "tag 1: must not be blank")
    );
}

#[test]
fn referral_codes_are_uppercased_alphanumerics() {
    assert_eq!(
        ReferralCode::parse(" ab12cd ").expect("valid").as_str(),
        "AB12CD"
    );
    for bad in ["abc".to_owned(), "a".repeat(33)] {
        assert_eq!(
            refused(ReferralCode::parse(&bad)),
            because("referral_code", "must be 4–32 characters long"),
            "{bad}"
        );
    }
    assert_eq!(
        refused(ReferralCode::parse("ab-12")),
        because("referral_code", "must contain only letters and digits")
    );
}

#[test]
fn values_serialise_as_plain_strings_and_revalidate() {
    let title = ItemTitle::parse("Hello").expect("valid");
    assert_eq!(serde_json::to_value(&title).expect("serialise"), "Hello");
    let tags = Tags::parse(vec!["a".into(), "b".into()]).expect("valid");
    assert_eq!(
        serde_json::to_value(&tags).expect("serialise"),
        serde_json::json!(["a", "b"])
    );
    let title = serde_json::from_value::<ItemTitle>(serde_json::json!("")).expect_err("blank");
    assert_eq!(title.to_string(), "title: must not be blank");
    let email = serde_json::from_value::<Email>(serde_json::json!("nope")).expect_err("no @");
    assert_eq!(email.to_string(), "email: is not a valid email address");
    let back: Tags = serde_json::from_value(serde_json::json!(["a", "b"])).expect("valid");
    assert_eq!(back, tags);
}

#[test]
fn enums_use_their_documented_text_forms() {
    assert_eq!(serde_json::to_value(Role::Owner).expect("ser"), "OWNER");
    assert_eq!(serde_json::to_value(Region::Eu).expect("ser"), "eu");
    assert_eq!(
        serde_json::to_value(ItemStatus::Archived).expect("ser"),
        "ARCHIVED"
    );
    assert_eq!(
        serde_json::to_value(StaffRole::Analyst).expect("ser"),
        "ANALYST"
    );
    assert_eq!(serde_json::to_value(ExportFormat::Pdf).expect("ser"), "PDF");
    assert_eq!(serde_json::to_value(Plan::Trial).expect("ser"), "TRIAL");
    assert_eq!(Region::Us.to_string(), "us");
    assert_eq!(Role::Viewer.to_string(), "VIEWER");
    assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
    assert_eq!("EU".parse::<Region>(), Ok(Region::Eu));
    assert_eq!("PRO".parse::<Plan>(), Ok(Plan::Pro));
    assert_eq!("csv".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
    assert_eq!("Support".parse::<StaffRole>(), Ok(StaffRole::Support));
    assert_eq!("draft".parse::<ItemStatus>(), Ok(ItemStatus::Draft));
    assert_eq!(
        refused("GOD".parse::<Role>()),
        because("role", "must be one of OWNER, ADMIN, MEMBER, VIEWER")
    );
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>(), Ok(*role));
    }
}
