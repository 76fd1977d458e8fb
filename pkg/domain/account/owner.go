package account

// ownerTraits are the traits that name an account's owner, most specific
// first: an explicit owner, then the CRM's account owners by team, a
// customer's CSM before its AE, and a prospect's SDR last.
var ownerTraits = []string{"owner", "csm_id", "ae_id", "sdr_id"}

// OwnerOf is the owner of record of an account with these traits: the first
// of owner, csm_id, ae_id and sdr_id that is set, or "".
func OwnerOf(traits map[string]string) string {
	for _, t := range ownerTraits {
		if v := traits[t]; v != "" {
			return v
		}
	}
	return ""
}
