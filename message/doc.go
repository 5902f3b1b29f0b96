// Package message defines the plaintext kinds that travel inside an
// encrypted envelope, and turns them into bodies and back.
//
// A body is the plaintext an envelope carries once it has been opened and its
// sender authenticated: one JSON object of at most [MaxBodySize] bytes. Being
// authenticated does not make a sender trustworthy. A body may come from
// anyone who can reach a mission, and what it holds is shown to officers and
// defenders, so it is checked strictly before it becomes a Go value.
//
// Use [Marshal] to write a body and [Unmarshal] to read one:
//
//	body, err := message.Marshal(&message.Alert{Country: "ug", ...})
//
//	m, err := message.Unmarshal(body)
//	switch m := m.(type) {
//	case *message.Alert:
//		...
//	}
//
// # Kinds
//
// The object's "kind" field says which Go type it is; the other fields sit
// beside it, named in snake_case, in this order. Text limits count characters
// (runes), not bytes, so every script gets the same room.
//
//   - alert, [Alert] (defender → missions of a country): country, priority,
//     category, summary (1–280, one line), details (0–8000), location
//     (optional, up to 120, one line), share, publicise, exercise
//     (optional: true for a drill, left out otherwise).
//   - update, [Update] (defender → the same missions): ref, text (1–4000).
//   - cancel, [Cancel] (defender → the same missions): ref, reason, text
//     (optional, up to 1000).
//   - meeting_request, [MeetingRequest] (defender → mission): country,
//     purpose (1–1000), times (1–5, distinct), place, safety_notes
//     (optional, up to 1000).
//   - observation_request, [ObservationRequest] (defender → missions):
//     country, court and case (1–200 each, one line), hearing, defendants
//     (0–20 names of 1–120, one line each), charges (optional, up to 2000).
//   - ack, [Ack] (mission or partner → defender): ref, by (1–200, one line),
//     next_step (0–1000).
//   - reply, [Reply] (either way, in a case thread): ref, text (1–4000).
//   - receipt, [Receipt] (bridge → defender): ref, partner (a directory id),
//     stored_at.
//   - broadcast, [Broadcast] (mission → everyone in a country): country,
//     category, title (1–120, one line), text (1–4000), valid_until
//     (optional).
//   - checkin, [CheckIn] (defender → missions of a country, held by the
//     relay and released when the defender misses a check-in): country,
//     priority, text (1–4000), armed, every and grace (durations in whole
//     seconds, written as Go writes them: "6h0m0s"; every at least 1s,
//     both at most 366 days), exercise (optional).
//   - escalation, [Escalation] (defender → the next tier, held and
//     released when an alert is not acknowledged in time): ref (the
//     alert), tier (target, headquarters or partners), then the alert's
//     own fields, country to exercise.
//
// A drill is marked with "exercise": true on an alert or a check-in (an
// escalation carries its alert's); [IsExercise] says so. Readers show a
// drill as one and never count it as a real case.
//
// What a mission's console writes (file mission.go), and the defender's
// answer to a broadcast:
//
//   - meeting_response, [MeetingResponse] (mission → defender): ref,
//     action (accept, propose, confirm, cancel), times (one for accept
//     and confirm, 1–5 for propose, [] for cancel), note (optional, up
//     to 1000).
//   - observation, [Observation] (mission → defender and the other
//     missions of the country): ref, status (assigned, confirmed,
//     outcome, withdrawn), observer (1–200, one line), hearing, text (up
//     to 2000; required for an outcome, optional otherwise).
//   - liaison, [Liaison] (mission → defender): ref, officer (1–200, one
//     line).
//   - broadcast_answer, [BroadcastAnswer] (defender → the broadcasting
//     mission): ref (the broadcast's id), country, intent (apply, ask),
//     text (1–4000).
//   - case_report, [CaseReport] (mission → its headquarters): ref,
//     mission, country, priority, status (new, acknowledged, in_progress,
//     resolved), title (1–280, one line), text (1–8000).
//   - shared_alert, [SharedAlert] (mission → partner governments): ref,
//     mission, country, priority, category, summary, details, location
//     (optional), publicise, note (optional, up to 1000). [ShareFrom]
//     builds one and refuses ([ErrNoConsent]) an alert sent without
//     consent to share.
//
// Text is multi-line unless it says one line.
// A ref is the [ID] of an earlier alert. Which sender may send which kind,
// and who signs it, is the envelope layer's business; this package checks
// only what a body says.
//
// # Strictness
//
// [Unmarshal] refuses, and [Marshal] will not write:
//
//   - invalid UTF-8, duplicate keys at any depth, nesting deeper than a list
//     in the object, anything after the object;
//   - an unknown kind, an unknown field, a missing field, null, a value of
//     the wrong type; absence is never read as a zero value, so an alert
//     without "share" is refused rather than taken as no consent;
//   - an enum value or country code that is not known ("UG" included: codes
//     are lower case, see package country);
//   - empty required text, text of only white space or invisible
//     characters (it would read as empty), text over its limit, a line
//     break in a one-line field, control characters (C0 other than "\n" in
//     multi-line text, DEL, C1), Unicode bidirectional embeddings, overrides
//     and marks, and invisible characters such as zero-width spaces that let
//     one text pass for another (the zero-width non-joiner and joiner are
//     allowed: Persian and Indic scripts need them; [StripBidiMarks] removes
//     the implicit bidi marks keyboards add);
//   - bidirectional isolates (U+2066, U+2067 and U+2068, each closed by
//     U+2069) unless balanced: closed on the line they open, properly
//     nested at most four deep, and not empty. Balanced, they keep a name
//     in another script from reordering the text around it, and reorder
//     nothing outside themselves;
//   - the zero time and any time before 2020-01-01 or from 2100-01-01 on;
//     repeated meeting times;
//   - an optional field that is present but empty: leave it out instead.
//
// Every refusal wraps [ErrInvalid]. One that can be pinned on a field is a
// *[FieldError], whose message names it ("message: alert.summary: longer than
// 280 characters"), invalid UTF-8 inside a string included; an unknown kind
// also wraps [ErrUnknownKind], text over its limit [ErrTooLong] and a line
// break in a one-line field [ErrLineBreak]. [Marshal] and [Unmarshal]
// refuse the same text with the same error. Errors never
// quote the body's content, so they are safe to log.
//
// # Canonical form
//
// Each message has exactly one body, and [Unmarshal] accepts only that body:
// a message cannot be re-encoded into a different but equivalent body. The
// canonical body is JSON with no whitespace; "kind" first, then the fields in
// the order listed above; optional fields left out when empty; an
// empty list written as []; times as "2026-11-28T17:00:00Z" (UTC, whole
// seconds, which [Marshal] normalises to); strings escaped only where JSON
// requires it (`"`, `\` and line feed as \n), so "<", "&" and non-ASCII text
// appear as they are.
//
// Unmarshal checks the canonical form last, after every field rule, so a
// body a person got wrong is reported by field name, and only a body that is
// right but differently encoded gets "message: body is not in canonical
// form".
package message
