package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// The standard decoder names an unknown field only by its key and a type
// error without array indexes; these walkers find the full path again by
// re-reading the document with the schema at hand.

// visitFunc sees every value once it has been read completely: its path,
// its schema type (nil where the schema has none), whether its key was
// unknown, and the input offset just after it. Returning false stops.
type visitFunc func(path string, t reflect.Type, unknown bool, end int64) bool

func walkDoc(data []byte, t reflect.Type, visit visitFunc) {
	dec := json.NewDecoder(bytes.NewReader(data))
	walkValue(dec, "", t, false, visit)
}

func walkValue(dec *json.Decoder, path string, t reflect.Type, unknown bool, visit visitFunc) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return false
			}
			key, _ := kt.(string)
			var ct reflect.Type
			childUnknown := false
			if t != nil && t.Kind() == reflect.Struct {
				if f, ok := structField(t, key); ok {
					ct = f.Type
				} else {
					childUnknown = true
				}
			} else if t != nil && t.Kind() == reflect.Map {
				ct = t.Elem()
			}
			if !walkValue(dec, join(path, key), ct, childUnknown, visit) {
				return false
			}
		}
		if _, err := dec.Token(); err != nil {
			return false
		}
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if !walkValue(dec, path+"["+strconv.Itoa(i)+"]", et, false, visit) {
				return false
			}
		}
		if _, err := dec.Token(); err != nil {
			return false
		}
	}
	return visit(path, t, unknown, dec.InputOffset())
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structField finds the field a JSON key decodes into, as encoding/json
// does: exact tag match first, then case-insensitive.
func structField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" {
			if tag == "-" {
				continue
			}
			name = tag
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f, true
		}
	}
	return fold, found
}

// unknownFieldPath returns the path of the first key named name that the
// schema does not know.
func unknownFieldPath(data []byte, t reflect.Type, name string) string {
	var out string
	walkDoc(data, t, func(path string, _ reflect.Type, unknown bool, _ int64) bool {
		if unknown && (path == name || strings.HasSuffix(path, "."+name)) {
			out = path
			return false
		}
		return true
	})
	return out
}

// fieldPath returns the path of the innermost value ending at or after
// offset.
func fieldPath(data []byte, t reflect.Type, offset int64) string {
	var out string
	walkDoc(data, t, func(path string, _ reflect.Type, _ bool, end int64) bool {
		if end >= offset {
			out = path
			return false
		}
		return true
	})
	return out
}
