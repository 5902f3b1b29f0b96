package message

// Category is what happened, for an [Alert].
type Category string

const (
	CategoryDetention    Category = "detention"
	CategoryRaid         Category = "raid"
	CategoryThreat       Category = "threat"
	CategoryAttack       Category = "attack"
	CategoryTravelBan    Category = "travel_ban"
	CategorySurveillance Category = "surveillance"
	CategoryTrial        Category = "trial"
	CategoryOther        Category = "other"
)

var categories = []Category{
	CategoryDetention, CategoryRaid, CategoryThreat, CategoryAttack,
	CategoryTravelBan, CategorySurveillance, CategoryTrial, CategoryOther,
}

// CancelReason is why a [Cancel] withdraws an alert. False alarms get their
// own value because false triggers were the main pain of earlier panic apps,
// and missions want to count them.
type CancelReason string

const (
	CancelSafe       CancelReason = "safe"
	CancelFalseAlarm CancelReason = "false_alarm"
	CancelOther      CancelReason = "other"
)

var cancelReasons = []CancelReason{CancelSafe, CancelFalseAlarm, CancelOther}

// Place is where a [MeetingRequest] proposes to meet.
type Place string

const (
	PlaceEmbassy Place = "embassy"
	PlaceOffice  Place = "office"
	PlaceNeutral Place = "neutral"
)

var places = []Place{PlaceEmbassy, PlaceOffice, PlaceNeutral}

// BroadcastCategory is what a [Broadcast] announces. It is a type of its own
// so an alert category cannot be put in a broadcast by mistake.
type BroadcastCategory string

const (
	BroadcastProgramme BroadcastCategory = "programme"
	BroadcastGrant     BroadcastCategory = "grant"
	BroadcastTraining  BroadcastCategory = "training"
	BroadcastAdvisory  BroadcastCategory = "advisory"
)

var broadcastCategories = []BroadcastCategory{
	BroadcastProgramme, BroadcastGrant, BroadcastTraining, BroadcastAdvisory,
}
