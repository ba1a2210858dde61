//! HubSpot webhooks through the public API, on payloads shaped as HubSpot documents them
//! (`tests/fixtures/hubspot/`): a signed request in, typed events, outcomes under the default and a
//! custom stage map, deal → contact links, and every limit refused with its code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use leadscore::error_code::ErrorCode;
use leadscore::outcome::hubspot::{
    parse_events, sign_v3, to_outcome, verify_signature_v3, AssociationType, ClientSecret,
    DealContactLink, EventKind, HubspotError, HubspotEvent, HubspotObject, PropertyChange,
    StageMap, MAX_EVENTS, MAX_HUBSPOT_BODY_BYTES,
};
use leadscore::outcome::OutcomeType;
use serde_json::json;

const CONTACTS: &str = include_str!("fixtures/hubspot/contact_lifecycle.json");
const DEALS: &str = include_str!("fixtures/hubspot/deal_stages.json");
const ASSOCIATIONS: &str = include_str!("fixtures/hubspot/associations.json");

fn parse(body: &str) -> Vec<HubspotEvent> {
    parse_events(body.as_bytes()).unwrap()
}

/// (outcome id, object, type, ts) of every event that maps.
fn outcomes(
    events: &[HubspotEvent],
    map: &StageMap,
) -> Vec<(String, HubspotObject, OutcomeType, i64)> {
    events
        .iter()
        .filter_map(|e| to_outcome(e, map))
        .map(|o| (o.id, o.object, o.kind, o.ts))
        .collect()
}

fn contact(id: &str) -> HubspotObject {
    HubspotObject::Contact(id.into())
}

fn deal(id: &str) -> HubspotObject {
    HubspotObject::Deal(id.into())
}

#[test]
fn reads_the_documented_example_event_by_event() {
    let events = parse(CONTACTS);
    assert_eq!(events.len(), 8);
    let first = &events[0];
    assert_eq!(
        first,
        &HubspotEvent {
            event_id: "3816279340".into(),
            subscription_type: "contact.propertyChange".into(),
            occurred_at: 1_462_216_307_945,
            portal_id: Some(33),
            app_id: Some(1_160_452),
            subscription_id: Some(25),
            attempt_number: 0,
            change_source: Some("ACADEMY".into()),
            kind: EventKind::PropertyChange(PropertyChange {
                object: contact("1246965"),
                property: "lifecyclestage".into(),
                value: "subscriber".into(),
            }),
        }
    );
    // `contact.creation` is not used: kept, counted, not refused.
    assert!(events[1].is_ignored());
    assert_eq!(events[1].event_id, "3816279480");
    assert_eq!(events.iter().filter(|e| e.is_ignored()).count(), 1);
    assert_eq!(events[4].attempt_number, 1, "the retry");
}

#[test]
fn contact_lifecycle_stages_become_outcomes_and_a_retry_keeps_its_id() {
    let events = parse(CONTACTS);
    let got = outcomes(&events, &StageMap::default());
    let c = contact("1246965");
    assert_eq!(
        got,
        vec![
            (
                "hubspot:3816280001".into(),
                c.clone(),
                OutcomeType::Qualified,
                1_763_900_121_000
            ),
            (
                "hubspot:3816280002".into(),
                c.clone(),
                OutcomeType::Qualified,
                1_763_986_521_000
            ),
            (
                "hubspot:3816280002".into(),
                c.clone(),
                OutcomeType::Qualified,
                1_763_986_521_000
            ),
            (
                "hubspot:3816280003".into(),
                c,
                OutcomeType::Customer,
                1_765_000_000_000
            ),
        ],
        "subscriber, evangelist and firstname map to nothing; the retried SQL has the same id"
    );
    // The record the outcome log keeps: valid, with the HubSpot event's id and time.
    let o = to_outcome(&events[5], &StageMap::default()).unwrap();
    let rec = o.for_lead("ada@acme.example").unwrap();
    assert_eq!(
        serde_json::to_value(&rec).unwrap(),
        json!({"id":"hubspot:3816280003","lead_id":"ada@acme.example","type":"customer","ts":1_765_000_000_000i64})
    );
    assert!(o.for_lead("").is_err(), "a lead id is still checked");
}

#[test]
fn deal_stages_map_through_the_default_table() {
    let events = parse(DEALS);
    assert_eq!(
        events.iter().filter(|e| e.is_ignored()).count(),
        2,
        "deal.creation, a company"
    );
    let got = outcomes(&events, &StageMap::default());
    let d = deal("1726215394");
    assert_eq!(
        got,
        vec![
            (
                "hubspot:1541967002".into(),
                d.clone(),
                OutcomeType::Opportunity,
                1_763_900_200_001
            ),
            (
                "hubspot:1541967003".into(),
                d.clone(),
                OutcomeType::Opportunity,
                1_764_500_000_000
            ),
            (
                "hubspot:1541967005".into(),
                d,
                OutcomeType::Customer,
                1_765_000_000_000
            ),
            (
                "hubspot:1541967006".into(),
                deal("1726219999"),
                OutcomeType::Disqualified,
                1_765_000_000_500
            ),
            // A custom pipeline's stage id is an open stage until the table names it.
            (
                "hubspot:1541967007".into(),
                deal("1726218888"),
                OutcomeType::Opportunity,
                1_765_000_000_600
            ),
            // Generic webhooks: object.propertyChange with objectTypeId 0-3.
            (
                "hubspot:1541967009".into(),
                deal("1726217777"),
                OutcomeType::Customer,
                1_765_000_000_800
            ),
        ],
        "amount, a cleared stage (\"\") and the company's lifecycle stage map to nothing"
    );
    // A deal's outcome goes to each associated contact's lead under its own id.
    let won = to_outcome(&events[4], &StageMap::default()).unwrap();
    let a = won.for_deal_contact("1246965", "ada@acme.example").unwrap();
    let b = won.for_deal_contact("1246966", "bob@acme.example").unwrap();
    assert_eq!(
        (a.id.as_str(), b.id.as_str()),
        ("hubspot:1541967005:1246965", "hubspot:1541967005:1246966")
    );
    assert_eq!((a.kind, a.ts), (OutcomeType::Customer, 1_765_000_000_000));
}

#[test]
fn a_custom_table_names_a_pipelines_won_stage() {
    let map = StageMap::from_json(
        r#"{"deal":{"dealstage":{"closedwon":"won","99001":"won","closedlost":"lost"}}}"#,
    )
    .unwrap();
    let got: Vec<(String, OutcomeType)> = outcomes(&parse(DEALS), &map)
        .into_iter()
        .map(|(id, _, kind, _)| (id, kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hubspot:1541967005".into(), OutcomeType::Customer),
            ("hubspot:1541967006".into(), OutcomeType::Disqualified),
            ("hubspot:1541967007".into(), OutcomeType::Customer),
            ("hubspot:1541967009".into(), OutcomeType::Customer),
        ],
        "no `*`: open stages map to nothing"
    );
    // No contact table: contact changes map to nothing.
    assert!(outcomes(&parse(CONTACTS), &map).is_empty());
}

#[test]
fn deal_contact_associations_come_out_in_one_direction() {
    let events = parse(ASSOCIATIONS);
    let links: Vec<&DealContactLink> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DealContact(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(
        links,
        vec![
            &DealContactLink {
                deal_id: "1726215394".into(),
                contact_id: "1246965".into(),
                removed: false,
                primary: Some(false),
                association_type: AssociationType::DealToContact,
            },
            &DealContactLink {
                deal_id: "1726215394".into(),
                contact_id: "1246966".into(),
                removed: true,
                primary: Some(false),
                association_type: AssociationType::ContactToDeal,
            },
        ]
    );
    assert_eq!(
        events.iter().filter(|e| e.is_ignored()).count(),
        2,
        "company associations"
    );
    assert!(events
        .iter()
        .all(|e| to_outcome(e, &StageMap::default()).is_none()));
}

#[test]
fn a_signed_fixture_verifies_and_a_changed_byte_does_not() {
    let secret = ClientSecret::new("0b3c2a4e-8f61-4d7a-9c55-1e2f3a4b5c6d").unwrap();
    let uri = "https://edge.example.com/v1/outcomes/hubspot?site=acme%3Aprod";
    let ts = "1765000001000";
    let now = 1_765_000_030_000;
    let sig = sign_v3(&secret, "POST", uri, DEALS.as_bytes(), ts);
    let check = |body: &str, uri: &str| {
        verify_signature_v3(
            &secret,
            "POST",
            uri,
            body.as_bytes(),
            Some(ts),
            Some(&sig),
            now,
        )
    };
    assert_eq!(check(DEALS, uri), Ok(()));
    assert_eq!(
        check(
            DEALS,
            "https://edge.example.com/v1/outcomes/hubspot?site=acme:prod"
        ),
        Ok(())
    );
    let tampered = DEALS.replacen("closedlost", "closedwon!", 1);
    assert_eq!(check(&tampered, uri), Err(HubspotError::BadSignature));
    let reformatted =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(DEALS).unwrap()).unwrap();
    assert_eq!(
        check(&reformatted, uri),
        Err(HubspotError::BadSignature),
        "the raw bytes are signed"
    );
}

/// A minimal used event, as JSON.
fn event(i: usize) -> serde_json::Value {
    json!({"eventId": 1000 + i, "subscriptionId": 1, "portalId": 33, "appId": 7,
           "occurredAt": 1_763_900_121_000i64, "subscriptionType": "contact.propertyChange",
           "attemptNumber": 0, "objectId": 42, "propertyName": "lifecyclestage",
           "propertyValue": "customer", "changeSource": "CRM_UI"})
}

fn batch(events: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::Value::Array(events)).unwrap()
}

fn refused(body: &[u8]) -> HubspotError {
    parse_events(body).unwrap_err()
}

#[test]
fn a_batch_is_at_most_100_events_and_256_kib() {
    assert_eq!(
        parse_events(&batch((0..MAX_EVENTS).map(event).collect()))
            .unwrap()
            .len(),
        100
    );
    let e = refused(&batch((0..=MAX_EVENTS).map(event).collect()));
    assert_eq!(e, HubspotError::TooManyEvents { count: 101 });
    assert_eq!(e.code(), ErrorCode::TooManyEvents);
    // Size is checked on the bytes, before parsing: padding counts.
    let one = batch(vec![event(0)]);
    let mut at_limit = one.clone();
    at_limit.resize(MAX_HUBSPOT_BODY_BYTES, b' ');
    assert_eq!(parse_events(&at_limit).unwrap().len(), 1);
    at_limit.push(b' ');
    let e = refused(&at_limit);
    assert_eq!(
        e,
        HubspotError::BodyTooLarge {
            len: MAX_HUBSPOT_BODY_BYTES + 1
        }
    );
    assert_eq!(e.code(), ErrorCode::BodyTooLarge);
    assert_eq!(parse_events(b"[]").unwrap(), vec![]);
}

#[test]
fn malformed_bodies_and_events_are_refused_naming_the_event_and_field() {
    let e = refused(b"[{\"eventId\":");
    assert_eq!(e.code(), ErrorCode::InvalidJson);
    assert_eq!(refused(b"{\"eventId\":1}"), HubspotError::NotAnArray);
    assert_eq!(refused(b"[1]").code(), ErrorCode::InvalidField);
    // Each case: event 1 (after a good event 0) with one field changed.
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("eventId", json!(""), "must not be empty"),
        ("eventId", json!(null), "is missing"),
        ("eventId", json!(-1), "non-negative integer or a string"),
        ("eventId", json!(1.5), "non-negative integer or a string"),
        (
            "eventId",
            json!({"id": 1}),
            "non-negative integer or a string",
        ),
        ("eventId", json!("x".repeat(121)), "more than 120"),
        ("eventId", json!("a\nb"), "control characters"),
        ("occurredAt", json!(null), "is missing"),
        ("occurredAt", json!(1_763_900_121), "between 2000 and 2100"),
        (
            "occurredAt",
            json!("1763900121000"),
            "between 2000 and 2100",
        ),
        ("subscriptionType", json!(""), "must not be empty"),
        ("subscriptionType", json!(3), "must be a string"),
        ("objectId", json!(null), "is missing"),
        ("objectId", json!(""), "must not be empty"),
        ("objectId", json!("../../x"), "numeric id"),
        ("objectId", json!("hubspot-deal:1"), "numeric id"),
        ("propertyName", json!(null), "is missing"),
        ("propertyValue", json!(["customer"]), "must be a string"),
        ("portalId", json!("33"), "non-negative integer"),
        ("attemptNumber", json!(1u64 << 40), "too large"),
        ("changeSource", json!(5), "must be a string"),
    ];
    for (field, value, message) in cases {
        let mut bad = event(1);
        bad[field] = value.clone();
        let e = refused(&batch(vec![event(0), bad]));
        match &e {
            HubspotError::Field {
                index: 1,
                field: f,
                message: m,
            } if *f == field && m.contains(message) => {}
            other => panic!("{field} = {value}: {other:?}"),
        }
        assert_eq!(e.code(), ErrorCode::InvalidField);
        assert!(
            e.to_string().starts_with(&format!("event 1: `{field}`")),
            "{e}"
        );
    }
    // An association change of a used type needs both ids and `associationRemoved`.
    let link = json!({"eventId": 9, "occurredAt": 1_763_900_121_000i64,
        "subscriptionType": "deal.associationChange", "associationType": "DEAL_TO_CONTACT",
        "fromObjectId": 1, "toObjectId": 2, "associationRemoved": false});
    assert!(parse_events(&batch(vec![link.clone()])).is_ok());
    for (field, value) in [
        ("associationRemoved", json!(null)),
        ("associationRemoved", json!("false")),
        ("toObjectId", json!(null)),
        ("associationType", json!(null)),
    ] {
        let mut bad = link.clone();
        bad[field] = value;
        assert!(
            matches!(refused(&batch(vec![bad])), HubspotError::Field { index: 0, field: f, .. } if f == field),
            "{field}"
        );
    }
}

#[test]
fn what_this_module_does_not_use_is_kept_loosely() {
    // A cleared property (no or null value) reads as "", a number as its text; unknown fields and
    // unknown subscription types pass with just the envelope.
    let mut cleared = event(0);
    cleared.as_object_mut().unwrap().remove("propertyValue");
    let mut null = event(1);
    null["propertyValue"] = json!(null);
    let mut number = event(2);
    number["propertyValue"] = json!(12000);
    number["someFutureField"] = json!({"nested": true});
    let other = json!({"eventId": "evt-abc", "occurredAt": 1_763_900_121_000i64,
        "subscriptionType": "conversation.newMessage", "objectId": {"not": "an id"}});
    let events = parse_events(&batch(vec![cleared, null, number, other])).unwrap();
    let values: Vec<&str> = events[..3]
        .iter()
        .map(|e| match &e.kind {
            EventKind::PropertyChange(p) => p.value.as_str(),
            _ => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(values, ["", "", "12000"]);
    assert!(events[3].is_ignored());
    assert_eq!(
        (events[3].event_id.as_str(), events[3].portal_id),
        ("evt-abc", None)
    );
    assert!(events
        .iter()
        .all(|e| to_outcome(e, &StageMap::default()).is_none()));
}
