package consumer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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
			recs, err := p.records(1)
			typeErr[0] = err
			if err == nil {
				out.Records = recs
			}
			return p.onlyTypeErr(err)
		case "NextShardIterator":
			s, err := p.optString(1)
			typeErr[1] = err
			if err == nil {
				out.NextShardIterator = s
			}
			return p.onlyTypeErr(err)
		case "MillisBehindLatest":
			n, err := p.optInt64(1)
			typeErr[2] = err
			if err == nil {
				out.MillisBehindLatest = n
			}
			return p.onlyTypeErr(err)
		case "ChildShards":
			cs, err := p.childShards(1)
			typeErr[3] = err
			if err == nil {
				out.ChildShards = cs
			}
			return p.onlyTypeErr(err)
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

// wrongType reads past the value at p.i and returns a typeError, or the
// syntax error that reading past it found.
func (p *grParser) wrongType(encl int, what string) error {
	if err := p.skip(encl); err != nil {
		return err
	}
	return &typeError{"expected " + what}
}

func (p *grParser) records(encl int) ([]types.Record, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, p.wrongType(encl, "Records to be a list")
	}
	recs := make([]types.Record, 0, 16)
	var typeErr error
	err := p.array(encl, func() error {
		recs = append(recs, types.Record{})
		err := p.record(encl+1, &recs[len(recs)-1])
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
	return recs, typeErr
}

func (p *grParser) record(encl int, r *types.Record) error {
	if p.literal("null") {
		return nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return p.wrongType(encl, "a Record object")
	}
	var typeErr [5]error
	err := p.object(encl, func(key []byte) error {
		var err error
		var slot int
		switch string(key) {
		case "ApproximateArrivalTimestamp":
			slot = 0
			var t *time.Time
			if t, err = p.optEpochSeconds(encl + 1); err == nil {
				r.ApproximateArrivalTimestamp = t
			}
		case "Data":
			slot = 1
			var d []byte
			if d, err = p.optBase64(encl + 1); err == nil {
				r.Data = d
			}
		case "EncryptionType":
			slot = 2
			var s *string
			if s, err = p.optString(encl + 1); err == nil {
				r.EncryptionType = ""
				if s != nil {
					r.EncryptionType = types.EncryptionType(*s)
				}
			}
		case "PartitionKey":
			slot = 3
			var s *string
			if s, err = p.optString(encl + 1); err == nil {
				r.PartitionKey = s
			}
		case "SequenceNumber":
			slot = 4
			var s *string
			if s, err = p.optString(encl + 1); err == nil {
				r.SequenceNumber = s
			}
		default:
			return p.skip(encl + 1)
		}
		typeErr[slot] = err
		return p.onlyTypeErr(err)
	})
	if err != nil {
		return err
	}
	return errors.Join(typeErr[:]...)
}

func (p *grParser) childShards(encl int) ([]types.ChildShard, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, p.wrongType(encl, "ChildShards to be a list")
	}
	cs := []types.ChildShard{}
	var typeErr error
	err := p.array(encl, func() error {
		cs = append(cs, types.ChildShard{})
		err := p.childShard(encl+1, &cs[len(cs)-1])
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
	return cs, typeErr
}

func (p *grParser) childShard(encl int, c *types.ChildShard) error {
	if p.literal("null") {
		return nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return p.wrongType(encl, "a ChildShard object")
	}
	var typeErr [3]error
	err := p.object(encl, func(key []byte) error {
		var err error
		var slot int
		switch string(key) {
		case "ShardId":
			var s *string
			if s, err = p.optString(encl + 1); err == nil {
				c.ShardId = s
			}
		case "ParentShards":
			slot = 1
			var ps []string
			if ps, err = p.stringList(encl + 1); err == nil {
				c.ParentShards = ps
			}
		case "HashKeyRange":
			slot = 2
			var h *types.HashKeyRange
			if h, err = p.hashKeyRange(encl + 1); err == nil {
				c.HashKeyRange = h
			}
		default:
			return p.skip(encl + 1)
		}
		typeErr[slot] = err
		return p.onlyTypeErr(err)
	})
	if err != nil {
		return err
	}
	return errors.Join(typeErr[:]...)
}

func (p *grParser) stringList(encl int) ([]string, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, p.wrongType(encl, "a list of strings")
	}
	list := []string{}
	var typeErr error
	err := p.array(encl, func() error {
		s, err := p.optString(encl + 1)
		if err != nil {
			typeErr = err
			return p.onlyTypeErr(err)
		}
		v := ""
		if s != nil {
			v = *s
		}
		list = append(list, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, typeErr
}

func (p *grParser) hashKeyRange(encl int) (*types.HashKeyRange, error) {
	if p.literal("null") {
		return nil, nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, p.wrongType(encl, "a HashKeyRange object")
	}
	h := &types.HashKeyRange{}
	var typeErr [2]error
	err := p.object(encl, func(key []byte) error {
		var dst **string
		var slot int
		switch string(key) {
		case "StartingHashKey":
			dst = &h.StartingHashKey
		case "EndingHashKey":
			dst, slot = &h.EndingHashKey, 1
		default:
			return p.skip(encl + 1)
		}
		s, err := p.optString(encl + 1)
		if err == nil {
			*dst = s
		}
		typeErr[slot] = err
		return p.onlyTypeErr(err)
	})
	if err != nil {
		return nil, err
	}
	return h, errors.Join(typeErr[:]...)
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
	b, i := p.b, p.i
	if i >= len(b) || (b[i] != '-' && !isDigitByte(b[i])) {
		return nil, false, nil
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigitByte(b[i]):
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	default:
		return nil, false, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigitByte(b[i]) {
			return nil, false, errSyntax
		}
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigitByte(b[i]) {
			return nil, false, errSyntax
		}
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	}
	num, p.i = b[p.i:i], i
	return num, true, nil
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }

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
