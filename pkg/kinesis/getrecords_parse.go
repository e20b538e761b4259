package kinesis

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streambudget/streambudget/pkg/decode"
)

// A GetRecords answer parsed in one pass over the body, with the SDK's
// semantics: the body's first JSON value is read (what follows it is
// ignored, as json.Decoder does), syntax follows encoding/json exactly
// (strings may hold invalid UTF-8, which becomes U+FFFD), keys match
// exactly, a key given twice keeps its last value, a value of the wrong
// type is an error unless a later duplicate replaces it, unknown keys are
// skipped. Strings with escapes or bytes above ASCII are handed to
// encoding/json, so they unescape exactly as the SDK's do.

var errSyntax = errors.New("invalid JSON")

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type grParser struct {
	b []byte
	i int
}

func parseGetRecords(body []byte) (*kinesis.GetRecordsOutput, error) {
	p := &grParser{b: body}
	out := &kinesis.GetRecordsOutput{}
	p.space()
	if p.i == len(p.b) {
		return out, nil // an empty answer: json.Decoder's io.EOF
	}
	if p.literal("null") {
		return out, nil
	}
	if p.b[p.i] != '{' {
		if err := p.skip(0); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("unexpected JSON type at the top of the answer")
	}
	var typeErr [4]error
	err := p.object(0, func(key []byte) error {
		switch string(key) {
		case "Records":
			v, err := p.records(1)
			return p.set(&typeErr[0], err, func() { out.Records = v })
		case "NextShardIterator":
			v, err := p.optString(1)
			return p.set(&typeErr[1], err, func() { out.NextShardIterator = v })
		case "MillisBehindLatest":
			v, err := p.optInt64(1)
			return p.set(&typeErr[2], err, func() { out.MillisBehindLatest = v })
		case "ChildShards":
			v, err := p.childShards(1)
			return p.set(&typeErr[3], err, func() { out.ChildShards = v })
		}
		return p.skip(1)
	})
	if err != nil {
		return nil, err
	}
	if err := errors.Join(typeErr[:]...); err != nil {
		return nil, err
	}
	return out, nil
}

// A typeError is a value of the wrong type or content; the value has been
// read past, so parsing goes on (a later duplicate key may replace it).
type typeError struct{ msg string }

func (e *typeError) Error() string { return e.msg }

func (p *grParser) onlyTypeErr(err error) error {
	var te *typeError
	if err == nil || errors.As(err, &te) {
		return nil
	}
	return err
}

// set records a field's outcome in its slot (a later duplicate of the key
// overwrites it) and stores the value when it was read without error. Only
// a syntax error stops the parse.
func (p *grParser) set(slot *error, err error, store func()) error {
	*slot = err
	if err == nil {
		store()
	}
	return p.onlyTypeErr(err)
}

// wrongType reads past the value at p.i and returns a typeError, or the
// syntax error that reading past it found.
func (p *grParser) wrongType(encl int, what string) error {
	if err := p.skip(encl); err != nil {
		return err
	}
	return &typeError{"expected " + what}
}

func (p *grParser) records(encl int) ([]types.Record, error) {
	return parseList(p, encl, "Records to be a list", p.record)
}

// parseList reads a list or null; elem reads one element into v. A type
// error in an element fails the list once the list has been read past.
func parseList[T any](p *grParser, encl int, what string, elem func(encl int, v *T) error) ([]T, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, p.wrongType(encl, what)
	}
	list := make([]T, 0, 16)
	var typeErr error
	err := p.array(encl, func() error {
		list = append(list, *new(T))
		err := elem(encl+1, &list[len(list)-1])
		var te *typeError
		if errors.As(err, &te) {
			typeErr = err
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return list, typeErr
}

func (p *grParser) record(encl int, r *types.Record) error {
	var typeErr [5]error
	return p.fields(encl, "a Record object", typeErr[:], func(key []byte) error {
		switch string(key) {
		case "ApproximateArrivalTimestamp":
			v, err := p.optEpochSeconds(encl + 1)
			return p.set(&typeErr[0], err, func() { r.ApproximateArrivalTimestamp = v })
		case "Data":
			v, err := p.optBase64(encl + 1)
			return p.set(&typeErr[1], err, func() { r.Data = v })
		case "EncryptionType":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[2], err, func() { r.EncryptionType = types.EncryptionType(aws.ToString(v)) })
		case "PartitionKey":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[3], err, func() { r.PartitionKey = v })
		case "SequenceNumber":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[4], err, func() { r.SequenceNumber = v })
		}
		return p.skip(encl + 1)
	})
}

func (p *grParser) childShards(encl int) ([]types.ChildShard, error) {
	return parseList(p, encl, "ChildShards to be a list", p.childShard)
}

func (p *grParser) childShard(encl int, c *types.ChildShard) error {
	var typeErr [3]error
	return p.fields(encl, "a ChildShard object", typeErr[:], func(key []byte) error {
		switch string(key) {
		case "ShardId":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[0], err, func() { c.ShardId = v })
		case "ParentShards":
			v, err := p.stringList(encl + 1)
			return p.set(&typeErr[1], err, func() { c.ParentShards = v })
		case "HashKeyRange":
			v, err := p.hashKeyRange(encl + 1)
			return p.set(&typeErr[2], err, func() { c.HashKeyRange = v })
		}
		return p.skip(encl + 1)
	})
}

func (p *grParser) stringList(encl int) ([]string, error) {
	return parseList(p, encl, "a list of strings", func(encl int, v *string) error {
		s, err := p.optString(encl)
		if s != nil {
			*v = *s
		}
		return err
	})
}

func (p *grParser) hashKeyRange(encl int) (*types.HashKeyRange, error) {
	if p.literal("null") {
		return nil, nil
	}
	h := &types.HashKeyRange{}
	var typeErr [2]error
	err := p.fields(encl, "a HashKeyRange object", typeErr[:], func(key []byte) error {
		switch string(key) {
		case "StartingHashKey":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[0], err, func() { h.StartingHashKey = v })
		case "EndingHashKey":
			v, err := p.optString(encl + 1)
			return p.set(&typeErr[1], err, func() { h.EndingHashKey = v })
		}
		return p.skip(encl + 1)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// fields reads an object, or null (which sets nothing), calling member at
// each value, and then fails with the type errors left in typeErr, which
// member fills through set.
func (p *grParser) fields(encl int, what string, typeErr []error, member func(key []byte) error) error {
	if p.literal("null") {
		return nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return p.wrongType(encl, what)
	}
	if err := p.object(encl, member); err != nil {
		return err
	}
	return errors.Join(typeErr...)
}

// optString reads a string or null.
func (p *grParser) optString(encl int) (*string, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, p.wrongType(encl, "a string")
	}
	raw, plain, err := p.str()
	if err != nil {
		return nil, err
	}
	var s string
	if plain {
		s = string(raw[1 : len(raw)-1])
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// optBase64 reads base64 data in a string, or null, as the SDK does
// (base64.StdEncoding, which skips line breaks).
func (p *grParser) optBase64(encl int) ([]byte, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, p.wrongType(encl, "Data to be a base64 string")
	}
	raw, plain, err := p.str()
	if err != nil {
		return nil, err
	}
	src := raw[1 : len(raw)-1]
	if !plain {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		src = []byte(s)
	}
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return nil, &typeError{"Data: " + err.Error()}
	}
	return dst[:n], nil
}

// optEpochSeconds reads a number of seconds since the epoch, or null, into
// a time as the SDK does: to the millisecond, truncated, in UTC.
func (p *grParser) optEpochSeconds(encl int) (*time.Time, error) {
	if p.literal("null") {
		return nil, nil
	}
	num, ok, err := p.number()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, p.wrongType(encl, "a timestamp number")
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return nil, &typeError{"timestamp: " + err.Error()}
	}
	t := time.Unix(0, epochMillis(f)*1e6).UTC()
	return &t, nil
}

// epochMillis is smithy-go's ParseEpochSeconds without math/big: the float
// product rounds as big.Float's at 53 bits does, and the conversion
// saturates as big.Float.Int64 does.
func epochMillis(seconds float64) int64 {
	ms := seconds * 1e3
	switch {
	case ms >= math.MaxInt64:
		return math.MaxInt64
	case ms <= math.MinInt64:
		return math.MinInt64
	}
	return int64(ms)
}

// optInt64 reads an integer or null, as json.Number.Int64 does.
func (p *grParser) optInt64(encl int) (*int64, error) {
	if p.literal("null") {
		return nil, nil
	}
	num, ok, err := p.number()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, p.wrongType(encl, "an integer")
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return nil, &typeError{"integer: " + err.Error()}
	}
	return &n, nil
}

// object reads an object at p.i, which encl containers enclose, calling
// member with p.i at each value; member must read past the value.
func (p *grParser) object(encl int, member func(key []byte) error) error {
	if encl >= maxJSONDepth {
		return errSyntax
	}
	p.i++ // '{'
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return errSyntax
		}
		raw, plain, err := p.str()
		if err != nil {
			return err
		}
		key := raw[1 : len(raw)-1]
		if !plain {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			key = []byte(s)
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return errSyntax
		}
		p.i++
		p.space()
		if err := member(key); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.b) {
			return errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads an array at p.i, which encl containers enclose, calling
// elem with p.i at each element.
func (p *grParser) array(encl int, elem func() error) error {
	if encl >= maxJSONDepth {
		return errSyntax
	}
	p.i++ // '['
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.b) {
			return errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// skip reads past any value at p.i.
func (p *grParser) skip(encl int) error {
	if p.i >= len(p.b) {
		return errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(encl, func([]byte) error { return p.skip(encl + 1) })
	case c == '[':
		return p.array(encl, func() error { return p.skip(encl + 1) })
	case c == '"':
		_, _, err := p.str()
		return err
	case p.literal("true") || p.literal("false") || p.literal("null"):
		return nil
	default:
		_, ok, err := p.number()
		if err == nil && !ok {
			err = errSyntax
		}
		return err
	}
}

// str reads the string literal at p.i (quotes included) and reports
// whether it is plain: printable ASCII without escapes, the same bytes
// unquoted.
func (p *grParser) str() (raw []byte, plain bool, err error) {
	start := p.i
	plain = true
	for i := p.i + 1; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			p.i = i + 1
			return p.b[start:p.i], plain, nil
		case c < 0x20:
			return nil, false, errSyntax
		case c == '\\':
			plain = false
			i++
			if i >= len(p.b) {
				return nil, false, errSyntax
			}
			switch p.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(p.b) {
					return nil, false, errSyntax
				}
				for _, h := range p.b[i+1 : i+5] {
					if !isHex(h) {
						return nil, false, errSyntax
					}
				}
				i += 4
			default:
				return nil, false, errSyntax
			}
		case c >= 0x80:
			plain = false
		}
	}
	return nil, false, errSyntax
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number reads a JSON number at p.i; ok is false (and nothing read) when
// the value there is not a number.
func (p *grParser) number() (num []byte, ok bool, err error) {
	if p.i >= len(p.b) || (p.b[p.i] != '-' && (p.b[p.i] < '0' || p.b[p.i] > '9')) {
		return nil, false, nil
	}
	end, valid := decode.NumberEnd(p.b, p.i)
	if !valid {
		return nil, false, errSyntax
	}
	num, p.i = p.b[p.i:end], end
	return num, true, nil
}

// literal consumes word at p.i if it is there.
func (p *grParser) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *grParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}
