package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

var (
	prefixes   = []string{"North", "Blue", "Iron", "Bright", "Silver", "Cedar", "Summit", "Harbor", "Quantum", "Atlas", "Nova", "Pioneer", "Granite", "Lumen", "Vertex", "Orbit", "Maple", "Crescent", "Beacon", "Falcon", "Evergreen", "Red", "Polar", "Copper"}
	suffixes   = []string{"wind", "peak", "stone", "field", "bridge", "works", "line", "gate", "path", "forge", "wave", "point", "ridge", "lake", "port", "grid"}
	kinds      = []string{"Analytics", "Logistics", "Health", "Labs", "Systems", "Capital", "Software", "Retail", "Energy", "Media", "Robotics", "Foods"}
	industries = []string{"software", "financial_services", "healthcare", "manufacturing", "retail", "logistics", "media", "education"}
	regions    = []string{"na", "na", "emea", "emea", "apac"}
	firstNames = []string{"Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zoe"}
	lastNames  = []string{"Adams", "Becker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Khan", "Larsen", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber"}
	titles     = map[string][]string{
		RoleChampion:      {"Head of RevOps", "Director of Operations", "Analytics Lead"},
		RoleEconomicBuyer: {"VP Sales", "CFO", "COO"},
		RoleITSecurity:    {"CISO", "IT Security Manager"},
		RoleProcurement:   {"Procurement Manager", "Vendor Manager"},
		RoleEndUser:       {"Account Executive", "CS Manager", "Analyst", "Marketing Ops Specialist"},
	}
)

// namer hands out unique company names and ids.
type namer struct {
	used map[string]int
}

func newNamer() *namer { return &namer{used: map[string]int{}} }

// account draws a company. Segment mix: 55% smb, 30% mid-market, 15% enterprise.
func (n *namer) account(rng *rand.Rand, i int) Account {
	base := prefixes[rng.IntN(len(prefixes))] + suffixes[rng.IntN(len(suffixes))]
	kind := kinds[rng.IntN(len(kinds))]
	slug := strings.ToLower(base + "-" + kind)
	n.used[slug]++
	if c := n.used[slug]; c > 1 {
		slug = fmt.Sprintf("%s-%d", slug, c)
	}
	seg := SegmentSMB
	switch r := rng.Float64(); {
	case r < 0.15:
		seg = SegmentEnterprise
	case r < 0.45:
		seg = SegmentMidMarket
	}
	return Account{
		ID:       slug,
		Name:     base + " " + kind,
		Domain:   slug + ".example",
		Segment:  seg,
		Industry: industries[rng.IntN(len(industries))],
		Region:   regions[rng.IntN(len(regions))],
	}
}
