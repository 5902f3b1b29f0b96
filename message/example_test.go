package message_test

import (
	"errors"
	"fmt"

	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

func ExampleMarshal() {
	body, err := message.Marshal(&message.Alert{
		Country:  "ug",
		Priority: routing.Urgent,
		Category: message.CategoryRaid,
		Summary:  "Police are searching our office",
		Location: "Kampala Central",
		Share:    true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", body)
	// Output:
	// {"kind":"alert","country":"ug","priority":"urgent","category":"raid","summary":"Police are searching our office","details":"","location":"Kampala Central","share":true,"publicise":false}
}

func ExampleUnmarshal() {
	body := []byte(`{"kind":"cancel","ref":"4f1c2a9e7b3d6c5f8a0b1e2d3c4f5a6b","reason":"false_alarm"}`)
	m, err := message.Unmarshal(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	switch m := m.(type) {
	case *message.Cancel:
		fmt.Println("cancel", m.Ref, m.Reason)
	case *message.Alert:
		fmt.Println("alert", m.Summary)
	}
	// Output:
	// cancel 4f1c2a9e7b3d6c5f8a0b1e2d3c4f5a6b false_alarm
}

func ExampleFieldError() {
	body := []byte(`{"kind":"alert","country":"UG","priority":"urgent","category":"raid","summary":"x","details":"","share":true,"publicise":false}`)
	_, err := message.Unmarshal(body)
	var fe *message.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, "-", fe.Problem)
	}
	fmt.Println(err)
	// Output:
	// country - unknown country code
	// message: alert.country: unknown country code
}
